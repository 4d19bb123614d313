//go:build !linux

package executor

import "context"

// Run is only implemented on Linux.
func (r *Runner) Run(ctx context.Context, req Request) (Result, error) {
	return Result{Hostname: r.hostname()}, ErrUnsupported
}
