//go:build !linux

package executor

import (
	"context"
	"log/slog"
)

// Run is only implemented on Linux.
func (r *Runner) Run(ctx context.Context, req Request) (Result, error) {
	return Result{Hostname: r.hostname()}, ErrUnsupported
}

// KillLeftovers is only implemented on Linux; elsewhere it does nothing.
func KillLeftovers(spool string, log *slog.Logger) (int, error) { return 0, nil }
