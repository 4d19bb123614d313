package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/node/image"
	"github.com/musubi-fabric/musubi/node/provision/vm"
)

// RegisteredReady is a vm.ReadyFunc: a node is ready once its agent has
// registered in its VC's host registry (the executor entry `musubi agent`
// creates, ephemeral, in the VC's job queue), as DESIGN.md §6 asks. It
// polls the registry with a backoff growing to 250 ms.
func RegisteredReady(st coord.Store) vm.ReadyFunc {
	return func(ctx context.Context, ns vm.NodeState) error {
		q, err := jobqueue.New(jobqueue.Config{Store: st, VC: ns.VC})
		if err != nil {
			return err
		}
		for attempt := 1; ; attempt++ {
			hosts, err := q.Hosts(ctx)
			if err == nil {
				for _, h := range hosts {
					if h.Executor == ns.Node {
						return nil
					}
				}
			} else if !errors.Is(err, coord.ErrNotFound) && !coord.Retryable(err) {
				return err
			}
			t := time.NewTimer(min(time.Duration(attempt)*20*time.Millisecond, 250*time.Millisecond))
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("agent of %s not registered: %w", ns.Name, ctx.Err())
			case <-t.C:
			}
		}
	}
}

// LogReady is a vm.ReadyFunc: a node is ready once its log (the QEMU
// serial console, or a netns agent's output) has the line
// "MUSUBI-NODE-UP <vc>/<node> ..." that the node image's init prints once
// the node's network and agent are up (image.ReadyMarker); a line
// "MUSUBI-NODE-FAILED ..." fails it at once.
func LogReady(ctx context.Context, ns vm.NodeState) error {
	want := image.ReadyMarker + " " + ns.Name + " "
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(ns.Log); err == nil {
			s := string(b)
			if strings.Contains(s, want) {
				return nil
			}
			if i := strings.Index(s, image.FailMarker); i >= 0 {
				line, _, _ := strings.Cut(s[i:], "\n")
				return fmt.Errorf("node: %s", strings.TrimSpace(line))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no %q in %s: %w", image.ReadyMarker, ns.Log, ctx.Err())
		case <-tick.C:
		}
	}
}
