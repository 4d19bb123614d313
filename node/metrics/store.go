package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

// Store is a coord.Store that measures every operation of the Store it
// wraps (musubi_coord_op_duration_seconds, musubi_coord_op_errors_total)
// and counts its session events. Create it with InstrumentStore.
type Store struct {
	coord.Store
	m *Metrics
}

var _ coord.Store = (*Store)(nil)

// InstrumentStore wraps s. Close of the wrapper closes s.
func (m *Metrics) InstrumentStore(s coord.Store) *Store {
	return &Store{Store: s, m: m}
}

// Unwrap returns the wrapped store.
func (s *Store) Unwrap() coord.Store { return s.Store }

// errorLabel is a small fixed set of causes, so the label's cardinality
// stays bounded.
func errorLabel(err error) string {
	for _, e := range []struct {
		err   error
		label string
	}{
		{coord.ErrNotFound, "not_found"},
		{coord.ErrExists, "exists"},
		{coord.ErrBadVersion, "bad_version"},
		{coord.ErrNotEmpty, "not_empty"},
		{coord.ErrNoAuth, "no_auth"},
		{coord.ErrSessionExpired, "session_expired"},
		{coord.ErrConnectionLost, "connection_lost"},
		{coord.ErrUnavailable, "unavailable"},
		{coord.ErrClosed, "closed"},
		{context.Canceled, "canceled"},
		{context.DeadlineExceeded, "deadline"},
	} {
		if errors.Is(err, e.err) {
			return e.label
		}
	}
	return "other"
}

func (s *Store) observe(op string, start time.Time, err error) {
	s.m.CoordOpDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.CoordOpErrors.WithLabelValues(op, errorLabel(err)).Inc()
	}
}

// Create measures the wrapped Create.
func (s *Store) Create(ctx context.Context, path string, data []byte, mode coord.CreateMode, acl []coord.ACL) (string, error) {
	t := time.Now()
	p, err := s.Store.Create(ctx, path, data, mode, acl)
	s.observe("create", t, err)
	return p, err
}

// Get measures the wrapped Get.
func (s *Store) Get(ctx context.Context, path string) ([]byte, coord.Stat, error) {
	t := time.Now()
	d, st, err := s.Store.Get(ctx, path)
	s.observe("get", t, err)
	return d, st, err
}

// GetW measures the wrapped GetW.
func (s *Store) GetW(ctx context.Context, path string) ([]byte, coord.Stat, <-chan coord.Event, error) {
	t := time.Now()
	d, st, ch, err := s.Store.GetW(ctx, path)
	s.observe("get_w", t, err)
	return d, st, ch, err
}

// Set measures the wrapped Set.
func (s *Store) Set(ctx context.Context, path string, data []byte, version int32) (coord.Stat, error) {
	t := time.Now()
	st, err := s.Store.Set(ctx, path, data, version)
	s.observe("set", t, err)
	return st, err
}

// Delete measures the wrapped Delete.
func (s *Store) Delete(ctx context.Context, path string, version int32) error {
	t := time.Now()
	err := s.Store.Delete(ctx, path, version)
	s.observe("delete", t, err)
	return err
}

// Exists measures the wrapped Exists.
func (s *Store) Exists(ctx context.Context, path string) (bool, coord.Stat, error) {
	t := time.Now()
	ok, st, err := s.Store.Exists(ctx, path)
	s.observe("exists", t, err)
	return ok, st, err
}

// ExistsW measures the wrapped ExistsW.
func (s *Store) ExistsW(ctx context.Context, path string) (bool, coord.Stat, <-chan coord.Event, error) {
	t := time.Now()
	ok, st, ch, err := s.Store.ExistsW(ctx, path)
	s.observe("exists_w", t, err)
	return ok, st, ch, err
}

// Children measures the wrapped Children.
func (s *Store) Children(ctx context.Context, path string) ([]string, coord.Stat, error) {
	t := time.Now()
	k, st, err := s.Store.Children(ctx, path)
	s.observe("children", t, err)
	return k, st, err
}

// ChildrenW measures the wrapped ChildrenW.
func (s *Store) ChildrenW(ctx context.Context, path string) ([]string, coord.Stat, <-chan coord.Event, error) {
	t := time.Now()
	k, st, ch, err := s.Store.ChildrenW(ctx, path)
	s.observe("children_w", t, err)
	return k, st, ch, err
}

// Multi measures the wrapped Multi.
func (s *Store) Multi(ctx context.Context, ops ...coord.Op) ([]coord.OpResult, error) {
	t := time.Now()
	r, err := s.Store.Multi(ctx, ops...)
	s.observe("multi", t, err)
	return r, err
}

// Sync measures the wrapped Sync.
func (s *Store) Sync(ctx context.Context, path string) error {
	t := time.Now()
	err := s.Store.Sync(ctx, path)
	s.observe("sync", t, err)
	return err
}

// OnSession registers fn on the wrapped store.
func (s *Store) OnSession(fn func(coord.SessionEvent)) (cancel func()) {
	return s.Store.OnSession(fn)
}

// SessionEvent records a session state change: call it from one
// OnSession callback of the peer.
func (m *Metrics) SessionEvent(ev coord.SessionEvent) {
	m.CoordSessionEvents.WithLabelValues(ev.State.String()).Inc()
	if ev.State == coord.StateConnected {
		m.CoordConnected.Set(1)
	} else {
		m.CoordConnected.Set(0)
	}
}
