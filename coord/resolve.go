package coord

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Resolve settles the unknown outcome of a write that failed with
// ErrConnectionLost: it Syncs path, so the session's server has every
// committed write, then calls probe, which reads a record the caller wrote
// (its own claim, its unique id) and reports whether the write landed.
// Resolve retries Sync while the ensemble is unavailable, until ctx ends.
func Resolve(ctx context.Context, s Store, path string, probe func(ctx context.Context) (bool, error)) (bool, error) {
	for {
		err := s.Sync(ctx, path)
		if err == nil {
			break
		}
		if !Retryable(err) {
			return false, fmt.Errorf("coord: resolve %s: sync: %w", path, err)
		}
		if err := pause(ctx); err != nil {
			return false, fmt.Errorf("coord: resolve %s: %w", path, err)
		}
	}
	for {
		ok, err := probe(ctx)
		if err == nil || !Retryable(err) {
			return ok, err
		}
		if err := pause(ctx); err != nil {
			return false, fmt.Errorf("coord: resolve %s: %w", path, err)
		}
	}
}

// resolveBackoff is the pause between attempts while the ensemble is
// unavailable.
const resolveBackoff = 50 * time.Millisecond

func pause(ctx context.Context) error {
	t := time.NewTimer(resolveBackoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// FindChild returns the name of the child of parent whose name contains
// token (a unique id the caller put in a sequential node's name), or "" if
// there is none. Use it as Resolve's probe for sequential creates.
func FindChild(ctx context.Context, s Store, parent, token string) (string, error) {
	kids, _, err := s.Children(ctx, parent)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, k := range kids {
		if strings.Contains(k, token) {
			return k, nil
		}
	}
	return "", nil
}
