package sitebootstrap

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

// Step is one re-runnable piece of a bootstrap: Check says whether the
// step's outcome is already there (and describes what it found); Apply
// brings it about. Apply is called only when Check reports not done, and
// Check must report done afterwards.
type Step struct {
	Name  string
	Check func(ctx context.Context) (done bool, detail string, err error)
	Apply func(ctx context.Context) error
}

// Result is what Run did.
type Result struct {
	Steps   int      // steps run
	Applied []string // names of the steps that were applied
}

// Run checks and, where needed, applies steps in order, printing one
// progress line per step to out. It stops at the first failure. A step
// that fails because ZooKeeper was briefly unreachable (coord.Retryable:
// a reconfiguration or leader election in progress) is run again from its
// Check, which is safe because steps are re-runnable, for up to
// RetryFor.
func Run(ctx context.Context, out io.Writer, steps []Step) (Result, error) {
	var res Result
	width := 0
	for _, s := range steps {
		width = max(width, len(s.Name))
	}
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		res.Steps++
		prefix := fmt.Sprintf("[%*d/%d] %-*s", len(fmt.Sprint(len(steps))), i+1, len(steps), width, s.Name)
		deadline := time.Now().Add(RetryFor)
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
			applied, err := runStep(ctx, out, prefix, s)
			if applied && !slices.Contains(res.Applied, s.Name) {
				res.Applied = append(res.Applied, s.Name)
			}
			if err == nil {
				break
			}
			if !coord.Retryable(err) || time.Now().Add(backoff).After(deadline) {
				return res, fmt.Errorf("%s: %w", s.Name, err)
			}
			fmt.Fprintf(out, "%s  retrying in %s: ZooKeeper unreachable for now\n", prefix, backoff)
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(backoff):
			}
		}
	}
	return res, nil
}

// RetryFor bounds how long Run retries a step that fails with a
// transient ZooKeeper error.
var RetryFor = 30 * time.Second

// runStep checks s and applies it if needed, printing its progress line.
// applied says whether Apply succeeded.
func runStep(ctx context.Context, out io.Writer, prefix string, s Step) (applied bool, err error) {
	done, detail, err := s.Check(ctx)
	if err != nil {
		fmt.Fprintf(out, "%s  FAILED: %v\n", prefix, err)
		return false, err
	}
	if done {
		fmt.Fprintf(out, "%s  ok%s\n", prefix, paren(detail))
		return false, nil
	}
	if s.Apply == nil {
		fmt.Fprintf(out, "%s  FAILED: %s\n", prefix, detail)
		return false, fmt.Errorf("%w: %s", ErrNotConverged, detail)
	}
	t0 := time.Now()
	if err := s.Apply(ctx); err != nil {
		fmt.Fprintf(out, "%s  FAILED: %v\n", prefix, err)
		return false, err
	}
	done, after, err := s.Check(ctx)
	if err == nil && !done {
		err = fmt.Errorf("%w: %s", ErrNotConverged, after)
	}
	if err != nil {
		fmt.Fprintf(out, "%s  FAILED after apply: %v\n", prefix, err)
		return true, err
	}
	fmt.Fprintf(out, "%s  done in %s%s\n", prefix, time.Since(t0).Round(time.Millisecond), paren(after))
	return true, nil
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// Summary is the closing progress line of a Run.
func (r Result) Summary() string {
	if len(r.Applied) == 0 {
		return fmt.Sprintf("%d steps checked, nothing to change", r.Steps)
	}
	return fmt.Sprintf("%d steps checked, %d applied", r.Steps, len(r.Applied))
}
