package coord

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// EnsurePath creates p and every missing ancestor as empty persistent
// nodes with the store's default ACL. Existing nodes are left as they are,
// so it is safe to call repeatedly and concurrently, also by a session that
// may not create them (it needs CREATE only where a node is missing).
func EnsurePath(ctx context.Context, s Store, p string) error {
	if err := ValidPath(p); err != nil {
		return err
	}
	if p == "/" {
		return nil
	}
	if ok, _, err := s.Exists(ctx, p); err == nil && ok {
		return nil
	}
	cur := ""
	for _, el := range strings.Split(p[1:], "/") {
		cur += "/" + el
		if _, err := s.Create(ctx, cur, nil, Persistent, nil); err != nil && !errors.Is(err, ErrExists) {
			// ZooKeeper checks the parent's CREATE permission before the
			// node's existence, so a session confined by ACLs (a VC's
			// agent) is refused an ancestor that exists: skip it.
			if errors.Is(err, ErrNoAuth) {
				if ok, _, xerr := s.Exists(ctx, cur); xerr == nil && ok {
					continue
				}
			}
			return fmt.Errorf("coord: ensure %s: %w", cur, err)
		}
	}
	return nil
}
