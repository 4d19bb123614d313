package zkstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/musubi-fabric/musubi/coord"
)

// ConfigNode is where ZooKeeper publishes its dynamic configuration. It is
// outside any chroot: the Ensemble methods read it at the real root.
const ConfigNode = "/zookeeper/config"

// reconfigRetry is the pause between attempts of a reconfiguration the
// ensemble refused for a transient reason (another reconfiguration in
// progress, the new configuration's quorum not yet synced).
const reconfigRetry = 200 * time.Millisecond

var _ coord.Ensemble = (*Store)(nil)

// Members returns the ensemble's servers as its leader committed them; see
// coord.Ensemble. /zookeeper/config is world-readable, so any session may
// call it.
func (s *Store) Members(ctx context.Context) ([]coord.Member, error) {
	c, err := s.EnsembleConfig(ctx)
	if err != nil {
		return nil, err
	}
	return c.Members, nil
}

// ensembleReadPatience bounds how long EnsembleConfig retries through a
// transient outage (membership changes often cause a leader election).
const ensembleReadPatience = 15 * time.Second

// EnsembleConfig returns the ensemble's dynamic configuration (members
// and version), read after a sync so that it is the leader's. A read that
// fails for a transient reason (no server, connection lost) is retried for
// up to 15 s while ctx allows: membership changes often cause a leader
// election.
func (s *Store) EnsembleConfig(ctx context.Context) (coord.EnsembleConfig, error) {
	rctx, cancel := context.WithTimeout(ctx, ensembleReadPatience)
	defer cancel()
	var data []byte
	err := s.retry(rctx, func() error {
		if err := s.prepRaw(rctx); err != nil {
			return err
		}
		if _, err := s.conn.Sync(ConfigNode); err != nil {
			return err
		}
		var err error
		data, _, err = s.conn.Get(ConfigNode)
		return err
	})
	if err != nil {
		return coord.EnsembleConfig{}, fmt.Errorf("zkstore: read %s: %w", ConfigNode, s.mapErr(err))
	}
	c, err := coord.ParseEnsembleConfig(data)
	if err != nil {
		return coord.EnsembleConfig{}, fmt.Errorf("zkstore: %s: %w", ConfigNode, err)
	}
	return c, nil
}

// AddMember adds m to the ensemble by incremental reconfiguration,
// conditional on the configuration version it read, so that two sites
// racing for the same ID cannot overwrite each other: the loser gets
// coord.ErrExists. The session must hold the ensemble's super identity
// (ZooKeeper 3.5.3+ lets only the super user or a holder of an ACL on
// /zookeeper/config reconfigure). Transient refusals (a reconfiguration in
// progress, the new member not yet synced with the leader) are retried
// until ctx ends.
func (s *Store) AddMember(ctx context.Context, m coord.Member) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("zkstore: add member: %w: %w", coord.ErrReconfig, err)
	}
	return s.reconfig(ctx, "add "+m.String(), func(c coord.EnsembleConfig) (done bool, err error) {
		cur, ok := coord.FindMember(c.Members, m.ID)
		switch {
		case ok && cur.Spec() == m.Spec():
			return true, nil
		case ok:
			return false, fmt.Errorf("zkstore: add member: server %d is already %s: %w", m.ID, cur.Spec(), coord.ErrExists)
		}
		return false, nil
	}, []string{m.String()}, nil)
}

// RemoveMember removes server id by incremental reconfiguration; see
// AddMember for the identity it needs. Removing the last voter is refused
// with coord.ErrReconfig before anything is sent.
func (s *Store) RemoveMember(ctx context.Context, id int) error {
	first := true
	return s.reconfig(ctx, fmt.Sprintf("remove server %d", id), func(c coord.EnsembleConfig) (bool, error) {
		m, ok := coord.FindMember(c.Members, id)
		if !ok {
			if first {
				return false, fmt.Errorf("zkstore: remove member: server %d: %w", id, coord.ErrNotFound)
			}
			return true, nil // removed by an earlier attempt whose answer was lost
		}
		first = false
		if m.Role == coord.Participant && coord.Voters(c.Members) == 1 {
			return false, fmt.Errorf("zkstore: remove member: server %d is the last voter: %w", id, coord.ErrReconfig)
		}
		return false, nil
	}, nil, []string{fmt.Sprint(id)})
}

// reconfig reads the configuration, asks check whether the change is done
// (or impossible), and otherwise sends it conditional on the version read.
// An answer lost with the connection (the server we talk to may be the one
// leaving, or a leader change follows the commit) is resolved by reading
// the configuration again.
func (s *Store) reconfig(ctx context.Context, what string, check func(coord.EnsembleConfig) (bool, error), joining, leaving []string) error {
	var last error
	for {
		c, err := s.EnsembleConfig(ctx)
		if err == nil {
			var done bool
			if done, err = check(c); err != nil {
				return err
			}
			if done {
				return nil
			}
			_, err = s.conn.IncrementalReconfig(joining, leaving, c.Version)
			if err == nil {
				s.log.Info("zkstore: ensemble reconfigured", "change", what, "from_version", fmt.Sprintf("%x", c.Version))
				return nil
			}
			err = s.mapReconfigErr(err)
		}
		if !errors.Is(err, coord.ErrBadVersion) && !errors.Is(err, errReconfigBusy) && !coord.Retryable(err) && !errors.Is(err, coord.ErrSessionExpired) {
			return fmt.Errorf("zkstore: reconfig (%s): %w", what, err)
		}
		if !errors.Is(err, coord.ErrBadVersion) {
			last = err
			s.log.Debug("zkstore: reconfig retry", "change", what, "err", err)
		}
		t := time.NewTimer(reconfigRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("zkstore: reconfig (%s): %w (last: %v)", what, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// errReconfigBusy marks refusals worth retrying: a reconfiguration is in
// progress, or the new configuration has no synced quorum yet.
var errReconfigBusy = fmt.Errorf("%w: busy", coord.ErrReconfig)

// mapReconfigErr maps the errors the reconfig request adds to the usual
// ones. The library knows no names for ZNEWCONFIGNOQUORUM (-13) and
// ZRECONFIGINPROGRESS (-14).
func (s *Store) mapReconfigErr(err error) error {
	switch {
	case errors.Is(err, zk.ErrReconfigDisabled):
		return fmt.Errorf("%w: reconfigEnabled is false on the server", coord.ErrReconfig)
	case errors.Is(err, zk.ErrBadArguments):
		return fmt.Errorf("%w: %v", coord.ErrReconfig, err)
	case errors.Is(err, zk.ErrNoAuth):
		return fmt.Errorf("%w: reconfiguration needs the ensemble's super identity", coord.ErrNoAuth)
	case strings.HasSuffix(err.Error(), "error: -13"):
		return fmt.Errorf("%w (new configuration has no synced quorum)", errReconfigBusy)
	case strings.HasSuffix(err.Error(), "error: -14"):
		return fmt.Errorf("%w (another reconfiguration is in progress)", errReconfigBusy)
	}
	return s.mapErr(err)
}

// prepRaw checks a call that addresses the real root: closed, ctx,
// session.
func (s *Store) prepRaw(ctx context.Context) error {
	if s.closed.Load() {
		return coord.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.conn.State() != zk.StateHasSession {
		return s.waitSession(ctx, s.conn.SessionID())
	}
	return nil
}
