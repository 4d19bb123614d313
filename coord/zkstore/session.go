package zkstore

import (
	"context"
	"errors"
	"sync"

	"github.com/go-zookeeper/zk"
	"github.com/musubi-fabric/musubi/coord"
)

// onEvent is the library's event callback. It runs on the library's
// goroutines and must not block: it wakes waiting callers and queues
// session changes for the dispatcher.
func (s *Store) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	s.stateChanged()
	var st coord.SessionState
	switch ev.State {
	case zk.StateHasSession:
		st = coord.StateConnected
	case zk.StateDisconnected:
		st = coord.StateDisconnected
	case zk.StateExpired:
		st = coord.StateExpired
	case zk.StateAuthFailed:
		st = coord.StateAuthFailed
	default:
		return
	}
	s.stateMu.Lock()
	last := s.lastState
	// Report changes only: the library reports Disconnected after every
	// failed attempt, and once more right after Expired.
	if st == last || (st == coord.StateDisconnected && last == coord.StateExpired) {
		s.stateMu.Unlock()
		return
	}
	s.lastState = st
	sev := coord.SessionEvent{State: st, Server: ev.Server}
	if st == coord.StateConnected {
		sev.SessionID = s.conn.SessionID()
		srv := ev.Server
		s.server.Store(&srv)
	}
	// Publish under stateMu so the dispatcher sees changes in order.
	s.sessions.publish(sev)
	s.stateMu.Unlock()
	switch st {
	case coord.StateConnected:
		// The library calls hostProvider.Connected only after this event,
		// so the outage is still known here.
		s.log.Info("zkstore: session established", "session", sessionHex(sev.SessionID), "server", ev.Server, "outage", s.hp.outage())
	case coord.StateExpired:
		s.log.Warn("zkstore: session expired; opening a new one")
	default:
		s.log.Info("zkstore: session "+st.String(), "server", ev.Server)
	}
}

func sessionHex(id int64) string {
	const digits = "0123456789abcdef"
	var b [18]byte
	b[0], b[1] = '0', 'x'
	for i := 17; i >= 2; i-- {
		b[i] = digits[id&0xf]
		id >>= 4
	}
	return string(b[:])
}

// stateChanged wakes every caller waiting in stateWait.
func (s *Store) stateChanged() {
	s.stateMu.Lock()
	close(s.stateCh)
	s.stateCh = make(chan struct{})
	s.stateMu.Unlock()
}

// stateWait returns a channel closed at the next state change. Take it
// before checking the state, so no change is missed.
func (s *Store) stateWait() <-chan struct{} {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.stateCh
}

// waitSession waits until the Store has a session. It fails with
// coord.ErrUnavailable as soon as every server failed, with
// coord.ErrSessionExpired if the session that existed when the call began
// (sid, 0 for none) was replaced by a new one, and with ctx's error.
func (s *Store) waitSession(ctx context.Context, sid int64) error {
	for {
		ch := s.stateWait()
		if s.closed.Load() {
			return coord.ErrClosed
		}
		if s.conn.State() == zk.StateHasSession {
			if sid != 0 && s.conn.SessionID() != sid {
				return coord.ErrSessionExpired
			}
			return nil
		}
		if s.hp.exhausted.Load() {
			return coord.ErrUnavailable
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return coord.ErrClosed
		case <-ch:
		}
	}
}

// watch turns the library's watch channel into a coord one. The goroutine
// ends when the library delivers (it always does: on the event, on expiry,
// on close) or when the Store closes.
func (s *Store) watch(p string, zch <-chan zk.Event) (<-chan coord.Event, error) {
	out := make(chan coord.Event, 1)
	s.watchMu.Lock()
	if s.closed.Load() {
		s.watchMu.Unlock()
		return nil, coord.ErrClosed
	}
	s.watches.Add(1)
	s.watchMu.Unlock()
	go func() {
		defer s.watches.Done()
		var ev coord.Event
		select {
		case zev, ok := <-zch:
			if !ok {
				ev = coord.Event{Type: coord.EventNotWatching, Path: p, Err: coord.ErrClosed}
			} else {
				ev = s.toEvent(p, zev)
			}
		case <-s.closing:
			ev = coord.Event{Type: coord.EventNotWatching, Path: p, Err: coord.ErrClosed}
		}
		out <- ev
		close(out)
	}()
	return out, nil
}

func (s *Store) toEvent(p string, ev zk.Event) coord.Event {
	switch ev.Type {
	case zk.EventNodeCreated:
		return coord.Event{Type: coord.EventCreated, Path: p}
	case zk.EventNodeDeleted:
		return coord.Event{Type: coord.EventDeleted, Path: p}
	case zk.EventNodeDataChanged:
		return coord.Event{Type: coord.EventDataChanged, Path: p}
	case zk.EventNodeChildrenChanged:
		return coord.Event{Type: coord.EventChildrenChanged, Path: p}
	}
	err := s.mapErr(ev.Err)
	if err == nil {
		err = errors.New("zkstore: watch dropped")
	}
	return coord.Event{Type: coord.EventNotWatching, Path: p, Err: err}
}

// dispatcher calls OnSession callbacks from one goroutine, in order.
type dispatcher struct {
	mu     sync.Mutex
	queue  []coord.SessionEvent
	subs   []subscriber
	nextID uint64
	wake   chan struct{} // capacity 1
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
}

type subscriber struct {
	id uint64
	fn func(coord.SessionEvent)
}

func newDispatcher() *dispatcher {
	d := &dispatcher{wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go d.run()
	return d
}

func (d *dispatcher) publish(ev coord.SessionEvent) {
	d.mu.Lock()
	d.queue = append(d.queue, ev)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) subscribe(fn func(coord.SessionEvent)) func() {
	d.mu.Lock()
	d.nextID++
	id := d.nextID
	d.subs = append(d.subs, subscriber{id: id, fn: fn})
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		d.subs = removeSub(d.subs, func(s subscriber) bool { return s.id == id })
		d.mu.Unlock()
	}
}

func removeSub(subs []subscriber, del func(subscriber) bool) []subscriber {
	out := subs[:0:0]
	for _, s := range subs {
		if !del(s) {
			out = append(out, s)
		}
	}
	return out
}

func (d *dispatcher) run() {
	defer close(d.done)
	for {
		d.mu.Lock()
		q := d.queue
		d.queue = nil
		d.mu.Unlock()
		for _, ev := range q {
			d.mu.Lock()
			subs := d.subs // elements are never overwritten: removal copies
			d.mu.Unlock()
			for _, s := range subs {
				s.fn(ev)
			}
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-d.wake:
		case <-d.quit:
			d.mu.Lock()
			n := len(d.queue)
			d.mu.Unlock()
			if n == 0 {
				return
			}
		}
	}
}

// stop delivers what is queued and ends the dispatcher.
func (d *dispatcher) stop() {
	d.once.Do(func() { close(d.quit) })
	<-d.done
}
