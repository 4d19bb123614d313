package zkstore

import (
	"sync"
	"sync/atomic"
	"time"
)

// hostProvider is the zk.HostProvider of a Store. Unlike the library's
// DNSHostProvider it
//   - keeps the configured order (zk.Connect shuffles the list it passes to
//     Init, so the order is captured at construction) and starts every
//     reconnect at the first server, the site's LocalServer;
//   - pauses only backoff after a full unsuccessful pass, where the library
//     sleeps a fixed second each time Next reports retryStart;
//   - still reports retryStart once per flushEvery of a continuous outage,
//     so that requests queued before the outage fail with zk.ErrNoServer
//     instead of waiting for it to end (the library flushes them then);
//   - tells the Store when every server failed (exhausted), so calls made
//     during the outage fail fast with coord.ErrUnavailable.
type hostProvider struct {
	servers    []string
	backoff    time.Duration
	flushEvery time.Duration
	ready      <-chan struct{} // closed once the Store can take events
	quit       <-chan struct{} // closed by Store.Close
	notify     func()          // wakes callers waiting for a session

	exhausted atomic.Bool // a full pass failed since the last success

	mu        sync.Mutex
	next      int       // index of the server Next returns
	tried     int       // servers tried since the last success or pass
	failSince time.Time // when the current run of failed passes began
	flushedAt time.Time // when retryStart was last reported
}

func newHostProvider(servers []string, backoff, flushEvery time.Duration, ready, quit <-chan struct{}, notify func()) *hostProvider {
	return &hostProvider{
		servers:    append([]string(nil), servers...),
		backoff:    backoff,
		flushEvery: flushEvery,
		ready:      ready,
		quit:       quit,
		notify:     notify,
	}
}

// Init ignores the (shuffled) list zk.Connect passes.
func (h *hostProvider) Init([]string) error { return nil }

// Len is the number of servers.
func (h *hostProvider) Len() int { return len(h.servers) }

// Next returns the server to try next; retryStart asks the library to fail
// queued requests with ErrNoServer (and to sleep a second).
func (h *hostProvider) Next() (server string, retryStart bool) {
	select {
	case <-h.ready:
	case <-h.quit:
	}
	select {
	case <-h.quit:
		// The library checks for Close only when retryStart is set.
		return h.servers[0], true
	default:
	}
	h.mu.Lock()
	if h.tried >= len(h.servers) {
		h.tried, h.next = 0, 0
		now := time.Now()
		if !h.exhausted.Load() {
			h.failSince, h.flushedAt = now, now
			h.exhausted.Store(true)
			h.notify()
		}
		if now.Sub(h.flushedAt) >= h.flushEvery {
			h.flushedAt = now
			retryStart = true
		} else {
			h.mu.Unlock()
			t := time.NewTimer(h.backoff)
			select {
			case <-t.C:
			case <-h.quit:
				t.Stop()
			}
			h.mu.Lock()
		}
	}
	server = h.servers[h.next]
	h.next = (h.next + 1) % len(h.servers)
	h.tried++
	h.mu.Unlock()
	return server, retryStart
}

// Connected records a successful connection: the next reconnect starts
// again at the first server.
func (h *hostProvider) Connected() {
	h.mu.Lock()
	h.tried, h.next = 0, 0
	h.failSince, h.flushedAt = time.Time{}, time.Time{}
	h.exhausted.Store(false)
	h.mu.Unlock()
}

// outage reports how long the servers have all been failing (0 if not).
func (h *hostProvider) outage() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failSince.IsZero() {
		return 0
	}
	return time.Since(h.failSince)
}
