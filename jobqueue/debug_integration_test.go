//go:build integration

package jobqueue

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

// stallDump logs the stacks of the queue's goroutines when the ledger's
// completion count does not move for d (a diagnostic for liveness bugs).
func stallDump(t *testing.T, lg *ledger, d time.Duration, stop <-chan struct{}) {
	go func() {
		last, since := -1, time.Now()
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			c := lg.count()
			if c != last {
				last, since = c, time.Now()
				continue
			}
			if time.Since(since) > d {
				buf := make([]byte, 8<<20)
				buf = buf[:runtime.Stack(buf, true)]
				var out bytes.Buffer
				for _, g := range bytes.Split(buf, []byte("\n\n")) {
					if bytes.Contains(g, []byte("jobqueue.")) {
						out.Write(g)
						out.WriteString("\n\n")
					}
				}
				t.Logf("no progress for %v at %d completions; queue goroutines:\n%s", d, c, out.String())
				return
			}
		}
	}()
}
