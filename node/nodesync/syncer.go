package nodesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/overlayctl"
)

var discard = slog.New(slog.DiscardHandler)

// Kind names what an Applied reports.
type Kind int

// Kinds of Applied.
const (
	KindHosts Kind = iota + 1
	KindAccounts
)

func (k Kind) String() string {
	switch k {
	case KindHosts:
		return "hosts"
	case KindAccounts:
		return "accounts"
	}
	return "unknown"
}

// Applied reports one application of the records to the node.
type Applied struct {
	Kind Kind
	// At is when the file(s) had been written.
	At time.Time
	// Changed: a file changed (false: it already had this content).
	Changed bool
	// Hosts are the entries of the managed block (KindHosts).
	Hosts []HostEntry
	// Users are the users applied and Changes what changed
	// (KindAccounts).
	Users   []string
	Changes Changes
	// Newest is the ZooKeeper modification time of the newest record
	// read since the previous application (zero when only deletions were
	// seen): At - Newest is the propagation delay, up to the clock
	// difference between the node and the ensemble.
	Newest time.Time
}

// Config configures a Syncer.
type Config struct {
	// Store is the agent's session (with the VC's and the agents
	// credentials, see node/vcacl).
	Store coord.Store
	// VC is the node's virtual cluster; empty: federation records only.
	VC string
	// HostsFile is the file whose managed block is rendered ("/etc/hosts"
	// on a node); empty: no hosts sync.
	HostsFile string
	// Users applies the accounts; nil: no account sync.
	Users UserDB
	// Logger receives the syncer's logs; nil discards them.
	Logger *slog.Logger
	// OnApplied, if set, is called after every application, from Run's
	// goroutine: it must not block.
	OnApplied func(Applied)
	// RetryMin and RetryMax bound the backoff after a failed read or
	// write (default 100ms and 5s).
	RetryMin, RetryMax time.Duration
}

// Syncer keeps a node's hosts file and accounts in sync (package doc).
type Syncer struct {
	cfg     Config
	log     *slog.Logger
	writer  fileWriter
	sources []*source
}

// source is one watched directory of records.
type source struct {
	dir  string
	kind Kind
	node bool // records are overlayctl.NodeRecords (else hosts or accounts)
	gen  uint64
	recs map[string]*record
}

// record is one record as last read, decoded (nil value: skipped).
type record struct {
	data []byte
	gen  uint64
	host *HostEntry
	user *User
}

// New checks cfg and returns a Syncer.
func New(cfg Config) (*Syncer, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: no store", ErrConfig)
	}
	if cfg.VC != "" {
		if err := coord.ValidName(cfg.VC); err != nil {
			return nil, fmt.Errorf("%w: VC: %w", ErrConfig, err)
		}
	}
	if cfg.HostsFile == "" && cfg.Users == nil {
		return nil, fmt.Errorf("%w: nothing to sync (no hosts file, no user database)", ErrConfig)
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(5*time.Second, cfg.RetryMin)
	}
	s := &Syncer{cfg: cfg, log: cfg.Logger, writer: defaultWriter}
	if s.log == nil {
		s.log = discard
	}
	add := func(dir string, k Kind, node bool) {
		s.sources = append(s.sources, &source{dir: dir, kind: k, node: node})
	}
	// In order of precedence for a name.
	if cfg.HostsFile != "" {
		if cfg.VC != "" {
			add(coord.VCNodesDir(cfg.VC), KindHosts, true)
			add(coord.VCHostsDir(cfg.VC), KindHosts, false)
		}
		add(coord.HostsDir, KindHosts, false)
	}
	if cfg.Users != nil {
		add(coord.AccountsDir, KindAccounts, false)
		if cfg.VC != "" {
			add(coord.VCAccountsDir(cfg.VC), KindAccounts, false)
		}
	}
	return s, nil
}

// event is a watch event tagged with what it was set for.
type event struct {
	epoch uint64
	src   *source
	name  string // "" for the directory itself
	gen   uint64
	ev    coord.Event
}

// run is the state of one Run.
type run struct {
	s       *Syncer
	ctx     context.Context
	wg      sync.WaitGroup
	events  chan event
	epoch   uint64
	nextGen uint64
	resync  bool
	dirty   map[Kind]bool
	newest  map[Kind]time.Time
}

// errFatal marks errors that end Run.
type errFatal struct{ err error }

func (e errFatal) Error() string { return e.err.Error() }
func (e errFatal) Unwrap() error { return e.err }

// Run syncs until ctx ends (nil) or a failure retrying cannot mend: the
// store closed, or a directory this session may not read (coord.ErrNoAuth:
// the agent lacks its credentials). Failed reads (the ensemble
// unreachable) and failed writes are retried with backoff. Every
// goroutine Run starts has ended when it returns.
func (s *Syncer) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	r := &run{s: s, ctx: ctx, events: make(chan event, 1024), resync: true,
		dirty: map[Kind]bool{}, newest: map[Kind]time.Time{}}
	defer func() {
		cancel()
		r.wg.Wait()
	}()
	var timer *time.Timer
	var timerC <-chan time.Time
	backoff := s.cfg.RetryMin
	retryLater := func(what string, err error) {
		s.log.Warn("sync failed; retrying", "what", what, "in", backoff, "err", err)
		if timer == nil {
			timer = time.NewTimer(backoff)
		} else {
			timer.Reset(backoff)
		}
		timerC = timer.C
		backoff = min(2*backoff, s.cfg.RetryMax)
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	fatal := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		var f errFatal
		if errors.As(err, &f) || errors.Is(err, coord.ErrClosed) {
			return err
		}
		return nil
	}
	for {
		if r.resync && timerC == nil {
			if err := r.loadAll(); err != nil {
				if ferr := fatal(err); ferr != nil || ctx.Err() != nil {
					return ferr
				}
				retryLater("read", err)
			} else {
				r.resync = false
			}
		}
		if timerC == nil {
			if err := r.applyDirty(); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				retryLater("apply", err)
			} else if !r.resync {
				backoff = s.cfg.RetryMin
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timerC:
			timerC = nil
		case ev := <-r.events:
			for {
				if err := r.handle(ev); err != nil {
					if ferr := fatal(err); ferr != nil || ctx.Err() != nil {
						return ferr
					}
					r.resync = true
					if timerC == nil {
						retryLater("read", err)
					}
				}
				select {
				case ev = <-r.events:
					continue
				default:
				}
				break
			}
		}
	}
}

// forward delivers the one event of ch to the loop, tagged.
func (r *run) forward(ch <-chan coord.Event, src *source, name string, gen uint64) {
	if ch == nil {
		return
	}
	epoch := r.epoch
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			select {
			case r.events <- event{epoch: epoch, src: src, name: name, gen: gen, ev: ev}:
			case <-r.ctx.Done():
			}
		case <-r.ctx.Done():
		}
	}()
}

func (r *run) markDirty(k Kind) { r.dirty[k] = true }

// loadAll reads every directory and record afresh and sets new watches
// (after a session expiry, at start, or after a failed read); events of
// the watches set before are ignored from then on.
func (r *run) loadAll() error {
	r.epoch++
	for _, src := range r.s.sources {
		if len(src.recs) > 0 {
			r.markDirty(src.kind)
		}
		src.recs = map[string]*record{}
		r.markDirty(src.kind)
		if err := r.loadDir(src); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) handle(ev event) error {
	if ev.epoch != r.epoch {
		return nil
	}
	if ev.ev.Type == coord.EventNotWatching {
		if errors.Is(ev.ev.Err, coord.ErrClosed) {
			return fmt.Errorf("nodesync: %w", coord.ErrClosed)
		}
		r.s.log.Info("watches lost; reading everything again", "path", ev.ev.Path, "err", ev.ev.Err)
		r.resync = true
		return nil
	}
	if ev.name == "" {
		if ev.gen == ev.src.gen {
			return r.loadDir(ev.src)
		}
		return nil
	}
	if rec := ev.src.recs[ev.name]; rec != nil && rec.gen == ev.gen {
		return r.loadRec(ev.src, ev.name)
	}
	return nil
}

// loadDir lists src with a watch (or, while it does not exist, watches
// for its creation) and reads the records it does not know yet.
func (r *run) loadDir(src *source) error {
	st := r.s.cfg.Store
	for range 5 {
		r.nextGen++
		src.gen = r.nextGen
		kids, _, ch, err := st.ChildrenW(r.ctx, src.dir)
		if errors.Is(err, coord.ErrNotFound) {
			ok, _, xch, xerr := st.ExistsW(r.ctx, src.dir)
			if xerr != nil {
				return r.readErr(src.dir, xerr)
			}
			if ok {
				continue // created meanwhile: list it (the exists watch is left to fire unheard)
			}
			r.forward(xch, src, "", src.gen)
			if len(src.recs) > 0 {
				src.recs = map[string]*record{}
				r.markDirty(src.kind)
			}
			return nil
		}
		if err != nil {
			return r.readErr(src.dir, err)
		}
		r.forward(ch, src, "", src.gen)
		present := make(map[string]bool, len(kids))
		for _, k := range kids {
			present[k] = true
		}
		for name := range src.recs {
			if !present[name] {
				delete(src.recs, name)
				r.markDirty(src.kind)
			}
		}
		for _, k := range kids {
			if _, ok := src.recs[k]; ok {
				continue
			}
			if err := r.loadRec(src, k); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("nodesync: %s keeps appearing and vanishing", src.dir)
}

// readErr classifies a failed read of a directory: a permission refusal
// is fatal (retrying will not grant it).
func (r *run) readErr(p string, err error) error {
	if errors.Is(err, coord.ErrNoAuth) {
		return errFatal{fmt.Errorf("nodesync: read %s: %w (the agent's session needs its VC's and the agents credentials; see node/vcacl)", p, err)}
	}
	return fmt.Errorf("nodesync: read %s: %w", p, err)
}

// loadRec reads one record with a watch.
func (r *run) loadRec(src *source, name string) error {
	p := coord.Join(src.dir, name)
	r.nextGen++
	gen := r.nextGen
	data, stat, ch, err := r.s.cfg.Store.GetW(r.ctx, p)
	switch {
	case errors.Is(err, coord.ErrNotFound), errors.Is(err, coord.ErrNoAuth):
		if errors.Is(err, coord.ErrNoAuth) {
			r.s.log.Warn("record not readable by this node: skipped (created without the federation's ACL policy?)", "path", p)
		}
		if _, ok := src.recs[name]; ok {
			delete(src.recs, name)
			r.markDirty(src.kind)
		}
		return nil
	case err != nil:
		return fmt.Errorf("nodesync: read %s: %w", p, err)
	}
	rec := src.recs[name]
	if rec == nil || !bytes.Equal(rec.data, data) {
		rec = r.decode(src, name, data)
		src.recs[name] = rec
		r.markDirty(src.kind)
		if stat.Mtime.After(r.newest[src.kind]) {
			r.newest[src.kind] = stat.Mtime
		}
	}
	rec.gen = gen
	r.forward(ch, src, name, gen)
	return nil
}

// decode turns a record's data into what it contributes; a bad record
// contributes nothing and is logged (once per content).
func (r *run) decode(src *source, name string, data []byte) *record {
	rec := &record{data: data}
	var err error
	switch {
	case src.kind == KindAccounts:
		var u User
		if u, err = DecodeAccount(name, data); err == nil {
			rec.user = &u
		}
	case src.node:
		var n overlayctl.NodeRecord
		if n, err = overlayctl.DecodeNodeRecord(r.s.cfg.VC, name, data); err == nil && n.IP.IsValid() {
			if err = ValidHostName(n.Node); err == nil {
				rec.host = &HostEntry{IP: n.IP.Unmap(), Names: []string{n.Node}, Source: src.dir}
			}
		}
	default:
		var h HostRecord
		if h, err = DecodeHostRecord(name, data); err == nil {
			rec.host = &HostEntry{IP: h.IP, Names: append([]string{h.Name}, h.Aliases...), Source: src.dir}
		}
	}
	if err != nil {
		r.s.log.Warn("record skipped", "path", coord.Join(src.dir, name), "err", err)
	}
	return rec
}

// applyDirty applies what changed: hosts first (cheap), then accounts.
func (r *run) applyDirty() error {
	var errs []error
	for _, k := range []Kind{KindHosts, KindAccounts} {
		if !r.dirty[k] {
			continue
		}
		var err error
		if k == KindHosts {
			err = r.applyHosts()
		} else {
			err = r.applyAccounts()
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.dirty[k] = false
		r.newest[k] = time.Time{}
	}
	return errors.Join(errs...)
}

// sorted returns a source's record names in order.
func sorted(src *source) []string {
	names := make([]string, 0, len(src.recs))
	for n := range src.recs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// HostEntries are the entries of the managed block: sources in order of
// precedence, records by name; a name already given is dropped.
func (r *run) hostEntries() []HostEntry {
	var out []HostEntry
	seen := map[string]bool{}
	for _, src := range r.s.sources {
		if src.kind != KindHosts {
			continue
		}
		for _, n := range sorted(src) {
			h := src.recs[n].host
			if h == nil {
				continue
			}
			e := HostEntry{IP: h.IP, Source: h.Source}
			for _, name := range h.Names {
				if !seen[name] {
					seen[name] = true
					e.Names = append(e.Names, name)
				}
			}
			if len(e.Names) > 0 {
				out = append(out, e)
			}
		}
	}
	return out
}

func (r *run) applyHosts() error {
	entries := r.hostEntries()
	changed, err := r.s.writer.writeManaged(r.s.cfg.HostsFile, RenderHosts(entries))
	if err != nil {
		return err
	}
	if changed {
		r.s.log.Debug("hosts file rendered", "file", r.s.cfg.HostsFile, "entries", len(entries))
	}
	r.report(Applied{Kind: KindHosts, At: time.Now(), Changed: changed, Hosts: entries, Newest: r.newest[KindHosts]})
	return nil
}

// users lists the accounts to apply: the federation's, then the VC's
// (a name the federation has is not taken from the VC).
func (r *run) users() []User {
	var out []User
	seen := map[string]bool{}
	for _, src := range r.s.sources {
		if src.kind != KindAccounts {
			continue
		}
		for _, n := range sorted(src) {
			u := src.recs[n].user
			if u == nil || seen[u.Name] {
				continue
			}
			seen[u.Name] = true
			out = append(out, *u)
		}
	}
	return out
}

func (r *run) applyAccounts() error {
	users := r.users()
	ch, err := r.s.cfg.Users.Apply(r.ctx, users)
	if err != nil {
		return err
	}
	if !ch.Empty() {
		r.s.log.Info("accounts applied", "added", ch.Added, "updated", ch.Updated, "removed", ch.Removed, "conflicts", len(ch.Conflicts))
	}
	names := make([]string, 0, len(users))
	for _, u := range users {
		if _, bad := ch.Conflicts[u.Name]; !bad {
			names = append(names, u.Name)
		}
	}
	r.report(Applied{Kind: KindAccounts, At: time.Now(), Changed: !ch.Empty(), Users: names, Changes: ch, Newest: r.newest[KindAccounts]})
	return nil
}

func (r *run) report(a Applied) {
	if r.s.cfg.OnApplied != nil {
		r.s.cfg.OnApplied(a)
	}
}
