package vm

import (
	"context"
	"fmt"
	"time"
)

// WaitReady runs ready for the node st (whose process is p) with a time
// limit, and gives up early with ErrExited when p exits meanwhile. A nil
// ready means ready at once.
func WaitReady(ctx context.Context, r Runner, p Proc, ready ReadyFunc, st NodeState, timeout time.Duration) error {
	if ready == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ready(rctx, st) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrNotReady, st.Name, err)
			}
			return nil
		case <-tick.C:
			if !r.Alive(p) {
				cancel()
				<-done
				return fmt.Errorf("%w: %s (pid %d) while waiting for it to be ready", ErrExited, st.Name, p.PID)
			}
		}
	}
}
