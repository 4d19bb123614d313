package overlayctl

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/overlay"
)

// watchKind is how a path is read and watched.
type watchKind uint8

const (
	kindChildren watchKind = iota + 1 // ChildrenW
	kindData                          // GetW
	kindExists                        // ExistsW (a missing directory)
)

type wkey struct {
	path string
	kind watchKind
}

// firedWatch is a watch event tagged with the session epoch it was armed
// in; events of an older epoch (a dead session's) are ignored.
type firedWatch struct {
	key   wkey
	epoch uint64
	ev    coord.Event
}

// stateLoop owns the record cache. Everything in it is touched only by
// run's goroutine, except the fired queue.
type stateLoop struct {
	c   *Controller
	gen uint32

	kids  map[string][]string // directory -> child names
	data  map[string][]byte   // record path -> data
	armed map[wkey]bool
	epoch uint64

	todo  map[string]bool // paths to (re)read
	retry map[string]bool // paths whose read failed

	loaded       bool // a complete read succeeded
	needRegister bool
	session      coord.SessionState

	fmu     sync.Mutex
	fired   []firedWatch
	firedCh chan struct{}
	wg      sync.WaitGroup // watch forwarders

	lastDesired *overlay.Desired
	lastProbs   string
}

func newStateLoop(c *Controller, gen uint32) *stateLoop {
	return &stateLoop{
		c: c, gen: gen,
		kids: map[string][]string{}, data: map[string][]byte{}, armed: map[wkey]bool{},
		todo: map[string]bool{}, retry: map[string]bool{},
		needRegister: true,
		firedCh:      make(chan struct{}, 1),
	}
}

// readTimeout bounds one record read.
const readTimeout = 2 * time.Second

// topDirs are the directories the overlay reads.
var topDirs = []string{coord.SitesDir, coord.LiveDir, coord.LinksDir, coord.VCDir}

// kindOf says how a path of the overlay's part of the schema is read.
func kindOf(p string) watchKind {
	if slices.Contains(topDirs, p) {
		return kindChildren
	}
	el := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(el) == 3 && "/"+el[0] == coord.VCDir && el[2] == "nodes" {
		return kindChildren
	}
	return kindData
}

func (s *stateLoop) run(ctx context.Context) error {
	defer s.wg.Wait() // after cancel: the watch forwarders end with ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := s.c
	for _, d := range topDirs {
		s.todo[d] = true
	}
	var retryT *time.Timer
	var retryC <-chan time.Time
	retryWait := time.Duration(0)
	var debT *time.Timer
	var debC <-chan time.Time
	var firstDirty time.Time
	dirty := false
	regFailed := false
	stop := func(t **time.Timer, ch *<-chan time.Time) {
		if *t != nil {
			(*t).Stop()
			*t, *ch = nil, nil
		}
	}
	defer stop(&retryT, &retryC)
	defer stop(&debT, &debC)
	for {
		// Session changes first: an expiry invalidates every watch.
		for _, ev := range s.takeSession() {
			s.onSession(ev)
		}
		if s.needRegister && s.session != coord.StateDisconnected {
			if err := c.register(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if errors.Is(err, coord.ErrClosed) {
					return err
				}
				c.log.Warn("registration failed; retrying", "err", err)
				regFailed = true
			} else {
				s.needRegister, regFailed = false, false
				c.count(func(st *Stats) { st.Registrations++ })
				c.log.Info("site registered")
			}
		}
		for _, fw := range s.takeFired() {
			if fw.epoch != s.epoch {
				continue
			}
			delete(s.armed, fw.key)
			c.count(func(st *Stats) { st.WatchEvents++ })
			s.todo[fw.key.path] = true
		}
		changed, err := s.readTodo(ctx)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if !s.loaded && len(s.todo) == 0 && len(s.retry) == 0 {
			s.loaded = true
			changed = true
			c.count(func(st *Stats) { st.Loaded = true })
			c.log.Info("records loaded", "sites", len(s.kids[coord.SitesDir]), "live", len(s.kids[coord.LiveDir]), "links", len(s.kids[coord.LinksDir]), "vcs", len(s.kids[coord.VCDir]))
		}
		if changed {
			if !dirty {
				dirty, firstDirty = true, time.Now()
			}
			stop(&debT, &debC)
			d := min(c.cfg.Debounce, max(time.Until(firstDirty.Add(c.cfg.MaxDelay)), 0))
			debT = time.NewTimer(d)
			debC = debT.C
		}
		if (len(s.retry) > 0 || regFailed) && retryT == nil {
			retryWait = backoff(retryWait, c.cfg.RetryMin, c.cfg.RetryMax)
			retryT = time.NewTimer(retryWait)
			retryC = retryT.C
		} else if len(s.retry) == 0 && !regFailed {
			retryWait = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.stateKick:
			// The local link view or the session changed.
			if s.loaded && !dirty {
				dirty, firstDirty = true, time.Now()
				stop(&debT, &debC)
				debT = time.NewTimer(c.cfg.Debounce)
				debC = debT.C
			}
		case <-s.firedCh:
		case <-retryC:
			retryT, retryC = nil, nil
			for p := range s.retry {
				s.todo[p] = true
			}
			clear(s.retry)
		case <-debC:
			debT, debC = nil, nil
			dirty = false
			if s.loaded {
				s.recompute()
			}
		}
	}
}

func (s *stateLoop) takeSession() []coord.SessionEvent {
	c := s.c
	c.smu.Lock()
	defer c.smu.Unlock()
	q := c.sessQ
	c.sessQ = nil
	return q
}

func (s *stateLoop) takeFired() []firedWatch {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	q := s.fired
	s.fired = nil
	return q
}

func (s *stateLoop) onSession(ev coord.SessionEvent) {
	c := s.c
	s.session = ev.State
	c.count(func(st *Stats) { st.Session = ev.State })
	switch ev.State {
	case coord.StateDisconnected:
		c.log.Warn("ZooKeeper session disconnected; keeping the applied state")
	case coord.StateExpired:
		// Every watch and our live/ node are gone: register again and
		// re-read everything under a new epoch.
		c.log.Warn("ZooKeeper session expired; registering again and re-reading the records")
		s.epoch++
		clear(s.armed)
		s.needRegister = true
		for _, d := range topDirs {
			s.todo[d] = true
		}
	case coord.StateConnected:
		c.log.Info("ZooKeeper session connected", "session", ev.SessionID, "server", ev.Server)
		for p := range s.retry {
			s.todo[p] = true
		}
		clear(s.retry)
	}
}

// arm forwards the watch's one event to the loop.
func (s *stateLoop) arm(ctx context.Context, k wkey, ch <-chan coord.Event) {
	s.armed[k] = true
	epoch := s.epoch
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
		case ev, ok := <-ch:
			if !ok {
				ev = coord.Event{Type: coord.EventNotWatching, Path: k.path}
			}
			s.fmu.Lock()
			s.fired = append(s.fired, firedWatch{key: k, epoch: epoch, ev: ev})
			s.fmu.Unlock()
			kick(s.firedCh)
		}
	}()
}

// readTodo reads every pending path (and what it reveals), arming a watch
// on each unless one is armed already. It reports whether the cache
// changed. Failed reads go to the retry set; only a closed store is an
// error.
func (s *stateLoop) readTodo(ctx context.Context) (bool, error) {
	changed := false
	for len(s.todo) > 0 && ctx.Err() == nil {
		paths := make([]string, 0, len(s.todo))
		for p := range s.todo {
			paths = append(paths, p)
		}
		slices.Sort(paths) // parents before children
		clear(s.todo)
		for _, p := range paths {
			if !s.wanted(p) {
				continue
			}
			ch, err := s.read(ctx, p)
			if errors.Is(err, coord.ErrClosed) {
				return changed, err
			}
			if err != nil {
				if ctx.Err() != nil {
					return changed, nil
				}
				s.c.count(func(st *Stats) { st.ReadErrors++ })
				s.c.log.Debug("read failed; will retry", "path", p, "err", err)
				s.retry[p] = true
				continue
			}
			changed = changed || ch
		}
	}
	return changed, nil
}

// wanted reports whether p is still part of the cached tree: a top
// directory, or listed by its parent.
func (s *stateLoop) wanted(p string) bool {
	if slices.Contains(topDirs, p) {
		return true
	}
	parent, name := coord.Parent(p), coord.Base(p)
	if kindOf(p) == kindChildren { // vc/<vc>/nodes
		parent, name = coord.Parent(parent), coord.Base(parent)
	}
	return slices.Contains(s.kids[parent], name)
}

// read reads one path into the cache.
func (s *stateLoop) read(ctx context.Context, p string) (bool, error) {
	c := s.c
	st := c.cfg.Store
	c.count(func(x *Stats) { x.Reads++ })
	// Bound the read (a store honours ctx at least until it sends the
	// request; zkstore bounds a sent one by the session timeout).
	wctx := ctx // watches live as long as the loop
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	switch kindOf(p) {
	case kindChildren:
		k := wkey{p, kindChildren}
		var names []string
		var err error
		if s.armed[k] {
			names, _, err = st.Children(ctx, p)
		} else {
			var ch <-chan coord.Event
			names, _, ch, err = st.ChildrenW(ctx, p)
			if err == nil {
				s.arm(wctx, k, ch)
			}
		}
		if errors.Is(err, coord.ErrNotFound) {
			// Watch for the directory's creation.
			ek := wkey{p, kindExists}
			if !s.armed[ek] {
				ok, _, ch, xerr := st.ExistsW(ctx, p)
				if xerr != nil {
					return false, xerr
				}
				s.arm(wctx, ek, ch)
				if ok {
					s.todo[p] = true // created meanwhile
				}
			}
			names, err = nil, nil
		}
		if err != nil {
			return false, err
		}
		return s.setChildren(p, names), nil
	default:
		k := wkey{p, kindData}
		var data []byte
		var err error
		if s.armed[k] {
			data, _, err = st.Get(ctx, p)
		} else {
			var ch <-chan coord.Event
			data, _, ch, err = st.GetW(ctx, p)
			if err == nil {
				s.arm(wctx, k, ch)
			}
		}
		if errors.Is(err, coord.ErrNotFound) {
			_, had := s.data[p]
			delete(s.data, p)
			return had, nil
		}
		if err != nil {
			return false, err
		}
		old, had := s.data[p]
		s.data[p] = data
		return !had || string(old) != string(data), nil
	}
}

// setChildren records a directory's children, queues reads of new ones
// and drops the records of those gone.
func (s *stateLoop) setChildren(dir string, names []string) bool {
	old := s.kids[dir]
	s.kids[dir] = names
	changed := !slices.Equal(old, names)
	if dir == coord.LiveDir {
		return changed // names are all the overlay needs
	}
	sub := func(n string) string {
		if dir == coord.VCDir {
			return coord.VCNodesDir(n)
		}
		return dir + "/" + n
	}
	for _, n := range names {
		p := sub(n)
		if _, ok := s.data[p]; ok && s.armed[wkey{p, kindData}] {
			continue
		}
		if _, ok := s.kids[p]; ok && s.armed[wkey{p, kindChildren}] {
			continue
		}
		s.todo[p] = true
	}
	for _, n := range old {
		if slices.Contains(names, n) {
			continue
		}
		p := sub(n)
		if _, ok := s.data[p]; ok {
			delete(s.data, p)
			changed = true
		}
		if kids, ok := s.kids[p]; ok {
			for _, k := range kids {
				delete(s.data, p+"/"+k)
			}
			delete(s.kids, p)
			changed = true
		}
	}
	return changed
}
