package jobqueue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

// Config configures a Queue.
type Config struct {
	// Store is the coordination session the queue uses.
	Store coord.Store
	// VC names the virtual cluster whose queue this is: the queue lives
	// under coord.VCJobsDir(VC).
	VC string
	// Root overrides the queue's root path (tests); default
	// coord.VCJobsDir(VC).
	Root string
	// Logger receives the queue's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxMultiBytes bounds the payload of one submission transaction
	// (ZooKeeper's request limit is about 1 MiB); default 512 KiB.
	MaxMultiBytes int
	// MaxMultiOps bounds the operations of one submission transaction;
	// default 2000.
	MaxMultiOps int
	// IDCounter is the node that allocates job ids; default
	// <root>/nextid, so ids increase across every site of the VC. Point
	// several VCs' queues at one counter (where their ACLs allow it) for
	// ids unique across them.
	IDCounter string
	// SingleHostPEs are the parallel environments whose slots must all be
	// on one host (Grid Engine's allocation_rule $pe_slots); default
	// "smp". Jobs of other PEs may gather their slots from several
	// executors (see ExecutorConfig.JoinGangs).
	SingleHostPEs []string
}

// Queue is one virtual cluster's job queue on a coord.Store: submission,
// inspection and control of jobs (the qsub, qstat, qdel, qhold, qrls,
// qalter, qacct and qhost side), and the Executors that claim and run
// jobs. It is safe for concurrent use.
type Queue struct {
	st       coord.Store
	l        layout
	log      *slog.Logger
	now      func() time.Time
	maxBytes int
	maxOps   int
	single   []string
	idNode   string
	stats    stats

	// subMu serialises submissions (they all write the id counter) and
	// guards the counter's value and version last seen.
	subMu   sync.Mutex
	idKnown bool
	idNext  int64
	idVer   int32
}

// New returns the queue of cfg.VC. Call Init once (any member may; it is
// idempotent) before the first use.
func New(cfg Config) (*Queue, error) {
	if cfg.Store == nil {
		return nil, errors.New("jobqueue: Config.Store is nil")
	}
	root := cfg.Root
	if root == "" {
		if err := coord.ValidName(cfg.VC); err != nil {
			return nil, fmt.Errorf("jobqueue: VC: %w", err)
		}
		root = coord.VCJobsDir(cfg.VC)
	}
	if err := coord.ValidPath(root); err != nil || root == "/" {
		return nil, fmt.Errorf("jobqueue: root %q: %w", root, coord.ErrInvalidPath)
	}
	q := &Queue{st: cfg.Store, l: layout{root: root}, log: cfg.Logger, now: cfg.Now, maxBytes: cfg.MaxMultiBytes, maxOps: cfg.MaxMultiOps}
	if q.log == nil {
		q.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if q.now == nil {
		q.now = time.Now
	}
	if q.maxBytes <= 0 {
		q.maxBytes = 512 << 10
	}
	if q.maxOps <= 0 {
		q.maxOps = 2000
	}
	q.idNode = cfg.IDCounter
	if q.idNode == "" {
		q.idNode = q.l.nextID()
	} else if err := coord.ValidPath(q.idNode); err != nil {
		return nil, fmt.Errorf("jobqueue: IDCounter: %w", err)
	}
	q.single = cfg.SingleHostPEs
	if q.single == nil {
		q.single = []string{"smp"}
	}
	return q, nil
}

// multiHost reports whether a job's PE may span executors.
func (q *Queue) multiHost(r *record) bool {
	return r.Spec.PE != nil && !r.isArray() && !slices.Contains(q.single, r.Spec.PE.Name)
}

// Root is the queue's root path.
func (q *Queue) Root() string { return q.l.root }

// Init creates the queue's directories and id counter where missing.
func (q *Queue) Init(ctx context.Context) error {
	for _, d := range subdirs {
		if err := retry(ctx, func() error { return coord.EnsurePath(ctx, q.st, q.l.dir(d)) }); err != nil {
			return fmt.Errorf("jobqueue: init: %w", err)
		}
	}
	err := retry(ctx, func() error {
		if err := coord.EnsurePath(ctx, q.st, coord.Parent(q.idNode)); err != nil {
			return err
		}
		_, err := q.st.Create(ctx, q.idNode, []byte("1"), coord.Persistent, nil)
		if errors.Is(err, coord.ErrExists) {
			return nil
		}
		if errors.Is(err, coord.ErrConnectionLost) {
			// Resolved by trying again: the create is idempotent.
			return coord.ErrUnavailable
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("jobqueue: init: %w", err)
	}
	return nil
}

// counter returns the id counter's value and version: as this queue last
// saw them, or read now. Call with subMu held.
func (q *Queue) counter(ctx context.Context) (int64, int32, error) {
	if q.idKnown {
		return q.idNext, q.idVer, nil
	}
	var data []byte
	var stat coord.Stat
	err := retry(ctx, func() (err error) {
		data, stat, err = q.st.Get(ctx, q.idNode)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("jobqueue: read id counter: %w", err)
	}
	next, err := strconv.ParseInt(string(data), 10, 64)
	if err != nil || next <= 0 {
		return 0, 0, fmt.Errorf("%w: id counter %q", ErrCorrupt, data)
	}
	q.idKnown, q.idNext, q.idVer = true, next, stat.Version
	return next, stat.Version, nil
}

// setCounter records the counter's value and version after a write of it;
// dropCounter forgets them (a lost race or an unknown outcome). Call with
// subMu held.
func (q *Queue) setCounter(next int64, ver int32) { q.idKnown, q.idNext, q.idVer = true, next, ver }
func (q *Queue) dropCounter()                     { q.idKnown = false }

// allocIDs reserves n consecutive job ids and returns the first, by a
// versioned Set of the id counter alone. Ids are unique and increase
// across the whole queue (every site of the VC uses the same counter); an
// allocation whose outcome is unknown is abandoned, which leaves a gap.
// Call with subMu held.
func (q *Queue) allocIDs(ctx context.Context, n int) (int64, error) {
	for attempt := 0; ; attempt++ {
		next, ver, err := q.counter(ctx)
		if err != nil {
			return 0, err
		}
		stat, err := q.st.Set(ctx, q.idNode, []byte(strconv.FormatInt(next+int64(n), 10)), ver)
		switch {
		case err == nil:
			q.setCounter(next+int64(n), stat.Version)
			return next, nil
		case errors.Is(err, coord.ErrBadVersion), coord.Retryable(err):
			// Another submitter won, or the outcome is unknown: if it was
			// applied these ids are simply never used.
			q.dropCounter()
			if attempt > 0 || !errors.Is(err, coord.ErrBadVersion) {
				if err := pause(ctx, attempt/4); err != nil {
					return 0, err
				}
			}
		default:
			return 0, fmt.Errorf("jobqueue: allocate ids: %w", err)
		}
	}
}

// retry runs f until it returns an error that is not coord.ErrUnavailable
// (or ErrConnectionLost, for reads and idempotent writes), or ctx ends.
func retry(ctx context.Context, f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || !coord.Retryable(err) {
			return err
		}
		if perr := pause(ctx, attempt); perr != nil {
			return errors.Join(err, perr)
		}
	}
}

// pause waits a short, growing backoff before attempt+1; it returns ctx's
// error when ctx ends first.
func pause(ctx context.Context, attempt int) error {
	d := 10 * time.Millisecond << min(attempt, 4)
	if attempt == 0 {
		d = time.Millisecond
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// token returns a random 16-hex-digit id for a claim or operation.
func token() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand never fails on Linux; fall back to the clock.
		return strconv.FormatInt(time.Now().UnixNano(), 16)
	}
	return hex.EncodeToString(b[:])
}

// getRecord reads an active job's record and its version.
func (q *Queue) getRecord(ctx context.Context, id int64) (*record, int32, error) {
	var data []byte
	var stat coord.Stat
	p := q.l.job(id)
	err := retry(ctx, func() (err error) {
		data, stat, err = q.st.Get(ctx, p)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	r, err := decodeRecord(p, data)
	return r, stat.Version, err
}

// getDone reads a finished job's record.
func (q *Queue) getDone(ctx context.Context, id int64) (*record, error) {
	var data []byte
	p := q.l.done(id)
	err := retry(ctx, func() (err error) {
		data, _, err = q.st.Get(ctx, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return decodeRecord(p, data)
}

// exists is Exists with retries.
func (q *Queue) exists(ctx context.Context, p string) (bool, coord.Stat, error) {
	var ok bool
	var stat coord.Stat
	err := retry(ctx, func() (err error) {
		ok, stat, err = q.st.Exists(ctx, p)
		return err
	})
	return ok, stat, err
}

// children is Children with retries; a missing parent has no children.
func (q *Queue) children(ctx context.Context, p string) ([]string, error) {
	var kids []string
	err := retry(ctx, func() (err error) {
		kids, _, err = q.st.Children(ctx, p)
		return err
	})
	if errors.Is(err, coord.ErrNotFound) {
		return nil, nil
	}
	return kids, err
}

// resolve settles a write that returned ErrConnectionLost with probe.
func (q *Queue) resolve(ctx context.Context, p string, probe func(ctx context.Context) (bool, error)) (bool, error) {
	ok, err := coord.Resolve(ctx, q.st, p, probe)
	if err != nil {
		return false, fmt.Errorf("jobqueue: resolve %s: %w", p, err)
	}
	return ok, nil
}

// multiErr reports the failing op of a Multi error (-1 when err is not a
// *coord.MultiError).
func multiErr(err error) (int, error) {
	var me *coord.MultiError
	if errors.As(err, &me) {
		return me.Index, me.Err
	}
	return -1, err
}
