package reserve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/admission"
)

// Config configures a Reserver.
type Config struct {
	// Store is the coordination session (required).
	Store coord.Store
	// Logger receives the Reserver's logs (default: discard).
	Logger *slog.Logger
	// Admission tunes the admission decision (VLAN pool, search horizon).
	Admission admission.Options
	// MaxAttempts bounds the commits per operation that may lose to
	// concurrent commits before it gives up with ErrContention (default
	// 64; with the backoff between attempts, about 2 s of losing every
	// round). An unreachable ensemble is waited out until ctx ends.
	MaxAttempts int
	// ReadConcurrency is the number of resource nodes read in parallel
	// (default 8).
	ReadConcurrency int
	// Owner is recorded in the reservations this Reserver admits (e.g. the
	// site name).
	Owner string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// NewID returns a unique request id (default 128 random bits in hex).
	NewID func() string
	// VCACL gives the ACL of a new VC's subtree (nil, or a nil result: the
	// store's default ACL).
	VCACL func(vc string) []coord.ACL
}

// Reserver admits, releases and cancels reservations in the store. It is
// safe for concurrent use; concurrent Reservers (other peers) are fine too.
type Reserver struct {
	cfg   Config
	store coord.Store
	log   *slog.Logger
	cache groupCache

	dirsOnce sync.Mutex
	dirsOK   bool

	attempts  atomic.Int64
	conflicts atomic.Int64
	resolved  atomic.Int64
}

// New checks cfg and returns a Reserver. It does no I/O.
func New(cfg Config) (*Reserver, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: Config.Store is nil", ErrInvalid)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 64
	}
	if cfg.ReadConcurrency <= 0 {
		cfg.ReadConcurrency = 8
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = randomID
	}
	return &Reserver{cfg: cfg, store: cfg.Store, log: cfg.Logger}, nil
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// Stats counts a Reserver's commit attempts, the attempts that lost to a
// concurrent commit, and the unknown outcomes it resolved.
type Stats struct {
	Attempts, Conflicts, Resolved int64
}

// Stats returns the counters so far.
func (r *Reserver) Stats() Stats {
	return Stats{Attempts: r.attempts.Load(), Conflicts: r.conflicts.Load(), Resolved: r.resolved.Load()}
}

// ensureDirs creates the top-level directories this package writes under.
func (r *Reserver) ensureDirs(ctx context.Context) error {
	r.dirsOnce.Lock()
	defer r.dirsOnce.Unlock()
	if r.dirsOK {
		return nil
	}
	for _, d := range []string{coord.TimetableDir, coord.VLANsDir, coord.ReservationsDir, coord.VCDir} {
		if err := coord.EnsurePath(ctx, r.store, d); err != nil {
			return fmt.Errorf("reserve: %w", err)
		}
	}
	r.dirsOK = true
	return nil
}

// Reserve admits req (FCFS against everything committed before) and
// commits it. req.ID is filled in when empty; it must be unique. It
// returns the new record, or an error: one wrapping *admission.Refusal
// when it does not fit, ErrVCExists, ErrContention, an invalid-request
// error, or a store error.
func (r *Reserver) Reserve(ctx context.Context, req admission.Request) (Record, error) {
	if req.ID == "" {
		req.ID = r.cfg.NewID()
	}
	if req.Policy == "" {
		req.Policy = admission.RoundRobin
	}
	if err := req.Validate(); err != nil {
		return Record{}, fmt.Errorf("reserve: %w", err)
	}
	if !r.cfg.Now().Before(req.Window.End) {
		return Record{}, fmt.Errorf("%w: VC %s: window %v has already ended", ErrInvalid, req.VC, req.Window)
	}
	if err := r.ensureDirs(ctx); err != nil {
		return Record{}, err
	}
	log := r.log.With("vc", req.VC, "request", req.ID)
	rt := &retrier{max: r.cfg.MaxAttempts}
	for {
		snap, err := r.read(ctx)
		if err != nil {
			if transient(err) {
				if werr := rt.wait(ctx); werr != nil {
					return Record{}, fmt.Errorf("reserve: %s: %w (last: %w)", req.VC, werr, err)
				}
				continue
			}
			return Record{}, err
		}
		p, err := admission.Admit(snap.tt, req, r.cfg.Admission)
		if errors.Is(err, admission.ErrVCExists) {
			return Record{}, fmt.Errorf("%w: %s has bookings", ErrVCExists, req.VC)
		}
		if err != nil {
			return Record{}, fmt.Errorf("reserve: %s: %w", req.VC, err)
		}
		now := r.cfg.Now()
		rec := Record{
			VC: req.VC, RequestID: req.ID, State: Admitted, Window: p.Window,
			Request: req, Placement: p, Owner: r.cfg.Owner, Created: now, Updated: now,
		}
		ops, err := r.admitOps(snap, rec)
		if err != nil {
			return Record{}, err
		}
		r.attempts.Add(1)
		_, err = r.store.Multi(ctx, ops...)
		if err == nil {
			log.Info("reservation admitted", "nodes", len(p.Nodes), "vlan", p.VLAN, "window", p.Window.String(), "conflicts", rt.conflicts)
			return rec, nil
		}
		retry, err := r.classify(ctx, err, rt, r.recordProbe(req.VC, func(got Record, found bool) bool {
			return found && got.RequestID == req.ID
		}))
		if err == nil && !retry {
			log.Info("reservation admitted (outcome resolved after a lost connection)", "conflicts", rt.conflicts)
			return rec, nil
		}
		if err != nil {
			var me *coord.MultiError
			if errors.As(err, &me) && errors.Is(me.Err, coord.ErrExists) {
				switch me.Op.NodePath() {
				case coord.ReservationPath(req.VC):
					return Record{}, fmt.Errorf("%w: reservation %s exists", ErrVCExists, req.VC)
				case coord.VCPath(req.VC):
					return Record{}, fmt.Errorf("%w: a VC subtree %s is left over (purge it)", ErrVCExists, coord.VCPath(req.VC))
				}
			}
			return Record{}, fmt.Errorf("reserve: commit %s: %w", req.VC, err)
		}
		log.Debug("commit failed; retrying with fresh state", "conflicts", rt.conflicts, "rounds", rt.rounds)
	}
}

// probe settles an unknown outcome: it reads the store and reports whether
// the commit was applied, for coord.Resolve on path.
type probe struct {
	path string
	fn   func(ctx context.Context) (bool, error)
}

// recordProbe reads reservations/<vc> and asks applied whether the record
// (found false: absent) shows the commit.
func (r *Reserver) recordProbe(vc string, applied func(rec Record, found bool) bool) probe {
	path := coord.ReservationPath(vc)
	return probe{path: path, fn: func(ctx context.Context) (bool, error) {
		data, _, err := r.store.Get(ctx, path)
		if errors.Is(err, coord.ErrNotFound) {
			return applied(Record{}, false), nil
		}
		if err != nil {
			return false, err
		}
		rec, err := decodeRecord(vc, data)
		if err != nil {
			return false, err
		}
		return applied(rec, true), nil
	}}
}

// classify decides what to do after a failed commit: retry (a conflict, an
// unreachable ensemble, or an unknown outcome resolved as not applied),
// done (an unknown outcome resolved as applied: retry false, err nil), or
// fail (err).
func (r *Reserver) classify(ctx context.Context, err error, rt *retrier, pr probe) (retry bool, _ error) {
	var me *coord.MultiError
	switch {
	case errors.As(err, &me) && conflict(me):
		r.conflicts.Add(1)
		rt.conflicts++
		if rt.conflicts >= rt.max {
			return false, fmt.Errorf("%w: lost %d times (last: %w)", ErrContention, rt.conflicts, err)
		}
	case errors.Is(err, coord.ErrConnectionLost) || errors.Is(err, coord.ErrSessionExpired):
		r.resolved.Add(1)
		ok, rerr := coord.Resolve(ctx, r.store, pr.path, pr.fn)
		if rerr != nil {
			return false, fmt.Errorf("reserve: resolve unknown outcome: %w (after %w)", rerr, err)
		}
		if ok {
			return false, nil
		}
		r.log.Debug("commit outcome resolved as not applied; retrying", "path", pr.path)
	case errors.Is(err, coord.ErrUnavailable):
	default:
		return false, err
	}
	if werr := rt.wait(ctx); werr != nil {
		return false, fmt.Errorf("%w (last: %w)", werr, err)
	}
	return true, nil
}

// transient reports whether a read failed for a reason that passes: the
// ensemble unreachable or the session being replaced.
func transient(err error) bool {
	return coord.Retryable(err) || errors.Is(err, coord.ErrSessionExpired)
}

// retrier paces the rounds of one operation: lost conflicts are bounded
// by max (ErrContention); an unreachable ensemble is waited out until the
// caller's ctx ends.
type retrier struct {
	max       int
	rounds    int
	conflicts int
}

// wait pauses before the next round.
func (rt *retrier) wait(ctx context.Context) error {
	rt.rounds++
	return pause(ctx, rt.rounds)
}

// conflict reports whether a failed Multi lost to a concurrent change of
// a resource (so a retry with fresh state may succeed).
func conflict(me *coord.MultiError) bool {
	switch {
	case errors.Is(me.Err, coord.ErrBadVersion), errors.Is(me.Err, coord.ErrNotFound):
		return true
	case errors.Is(me.Err, coord.ErrExists):
		// A VLAN tag node created concurrently; a booking created by
		// someone else is covered by its group's version check first.
		p := me.Op.NodePath()
		return coord.Parent(p) == coord.VLANsDir
	}
	return false
}

// Backoff between attempts: full jitter over an exponentially growing
// range, from backoffBase up to backoffCap, so that contending peers
// spread out and the losers of a round stop crowding the next one.
const (
	backoffBase = time.Millisecond
	backoffCap  = 64 * time.Millisecond
)

// pause waits before attempt+1.
func pause(ctx context.Context, attempt int) error {
	if attempt <= 1 {
		return ctx.Err() // the first retry goes at once: the winner is done
	}
	ceiling := backoffCap
	if attempt < 8 {
		ceiling = min(backoffCap, backoffBase<<(attempt-1))
	}
	d := time.Duration(mrand.Int64N(int64(ceiling)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// admitOps builds the Multi of an admission: the version bump of every
// group it books (first, so a conflict is reported as such), the record,
// the VC subtree with its spec, and the bookings.
func (r *Reserver) admitOps(snap *snapshot, rec Record) ([]coord.Op, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	entries := rec.Entries()
	var ops []coord.Op
	groups, byGroup := groupEntries(entries)
	for _, gp := range groups {
		g := snap.groups[gp]
		switch e := byGroup[gp][0]; {
		case g != nil:
			data, err := json.Marshal(g.rec.withBookings(rec.VC, byGroup[gp]))
			if err != nil {
				return nil, err
			}
			ops = append(ops, &coord.SetOp{Path: gp, Data: data, Version: g.stat.Version})
		case e.Kind == admission.KindVLAN:
			data, err := json.Marshal(ResourceRecord{Kind: admission.KindVLAN, Tag: e.VLAN}.withBookings(rec.VC, byGroup[gp]))
			if err != nil {
				return nil, err
			}
			ops = append(ops, &coord.CreateOp{Path: gp, Data: data, Mode: coord.Persistent})
		default:
			return nil, fmt.Errorf("%w: placement books %s, which the timetable does not hold", ErrCorrupt, gp)
		}
	}
	var acl []coord.ACL
	if r.cfg.VCACL != nil {
		acl = r.cfg.VCACL(rec.VC)
	}
	ops = append(ops, &coord.CreateOp{Path: coord.ReservationPath(rec.VC), Data: data, Mode: coord.Persistent})
	for _, d := range coord.VCSubdirs(rec.VC) {
		ops = append(ops, &coord.CreateOp{Path: d, Mode: coord.Persistent, ACL: acl})
		if d == coord.VCPath(rec.VC) {
			ops = append(ops, &coord.CreateOp{Path: coord.VCSpecPath(rec.VC), Data: data, Mode: coord.Persistent, ACL: acl})
		}
	}
	for _, e := range entries {
		ed, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		ops = append(ops, &coord.CreateOp{Path: entryPath(e), Data: ed, Mode: coord.Persistent})
	}
	return ops, nil
}

// groupEntries groups entries by their group node, in order of first
// appearance.
func groupEntries(entries []admission.Entry) ([]string, map[string][]admission.Entry) {
	var order []string
	by := map[string][]admission.Entry{}
	for _, e := range entries {
		gp := groupPath(e)
		if _, ok := by[gp]; !ok {
			order = append(order, gp)
		}
		by[gp] = append(by[gp], e)
	}
	return order, by
}

// Get returns the reservation of vc.
func (r *Reserver) Get(ctx context.Context, vc string) (Record, error) {
	rec, _, err := r.get(ctx, vc)
	return rec, err
}

func (r *Reserver) get(ctx context.Context, vc string) (Record, coord.Stat, error) {
	if err := coord.ValidName(vc); err != nil {
		return Record{}, coord.Stat{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	data, st, err := r.store.Get(ctx, coord.ReservationPath(vc))
	if errors.Is(err, coord.ErrNotFound) {
		return Record{}, st, fmt.Errorf("%w: %s", ErrNotFound, vc)
	}
	if err != nil {
		return Record{}, st, fmt.Errorf("reserve: read %s: %w", vc, err)
	}
	rec, err := decodeRecord(vc, data)
	return rec, st, err
}

// List returns every reservation, sorted by VC name.
func (r *Reserver) List(ctx context.Context) ([]Record, error) {
	vcs, err := r.children(ctx, coord.ReservationsDir)
	if err != nil {
		return nil, fmt.Errorf("reserve: list reservations: %w", err)
	}
	out := make([]Record, 0, len(vcs))
	for _, vc := range vcs {
		rec, err := r.Get(ctx, vc)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.VC, b.VC) })
	return out, nil
}
