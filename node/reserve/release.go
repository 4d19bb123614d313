package reserve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/admission"
)

// rebookOps returns, for every group node that held or will hold a
// booking of vc, a version-checked Set (as read now) of its record with
// the VC's bookings replaced by next (nil: removed). Together with the
// change of the booking children it is every change of a booking.
func (r *Reserver) rebookOps(ctx context.Context, vc string, prev, next []admission.Entry) ([]coord.Op, error) {
	groups, _ := groupEntries(append(slices.Clone(prev), next...))
	_, byGroup := groupEntries(next)
	var ops []coord.Op
	for _, gp := range groups {
		data, st, err := r.store.Get(ctx, gp)
		if err != nil {
			return nil, fmt.Errorf("reserve: read %s: %w", gp, err)
		}
		rec, err := decodeResource(gp, data)
		if err != nil {
			return nil, err
		}
		if data, err = json.Marshal(rec.withBookings(vc, byGroup[gp])); err != nil {
			return nil, err
		}
		ops = append(ops, &coord.SetOp{Path: gp, Data: data, Version: st.Version})
	}
	return ops, nil
}

// recordOps writes rec to reservations/<vc> (version-checked) and to the
// VC's spec.
func recordOps(rec Record, version int32) ([]coord.Op, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return []coord.Op{
		&coord.SetOp{Path: coord.ReservationPath(rec.VC), Data: data, Version: version},
		&coord.SetOp{Path: coord.VCSpecPath(rec.VC), Data: data, Version: coord.AnyVersion},
	}, nil
}

// update runs one read-modify-commit loop on a reservation: change builds
// the ops from the current record (ok false: nothing to do), applied tells
// from a re-read record whether the commit landed.
func (r *Reserver) update(ctx context.Context, vc, what string,
	change func(rec Record, version int32) (next Record, ops []coord.Op, ok bool, err error),
	applied func(prev, got Record, found bool) bool,
) (Record, error) {
	rt := &retrier{max: r.cfg.MaxAttempts}
	for {
		rec, st, err := r.get(ctx, vc)
		var next Record
		var ops []coord.Op
		ok := false
		if err == nil {
			next, ops, ok, err = change(rec, st.Version)
		}
		if transient(err) {
			if werr := rt.wait(ctx); werr != nil {
				return Record{}, fmt.Errorf("reserve: %s %s: %w (last: %w)", what, vc, werr, err)
			}
			continue
		}
		if err != nil || !ok {
			return next, err
		}
		r.attempts.Add(1)
		_, err = r.store.Multi(ctx, ops...)
		if err == nil {
			r.log.Info("reservation "+what, "vc", vc, "window", next.Window.String(), "conflicts", rt.conflicts)
			return next, nil
		}
		retry, err := r.classify(ctx, err, rt, r.recordProbe(vc, func(got Record, found bool) bool {
			return applied(rec, got, found)
		}))
		if err != nil {
			return Record{}, fmt.Errorf("reserve: %s %s: %w", what, vc, err)
		}
		if !retry {
			return next, nil
		}
	}
}

// Cancel frees everything the reservation of vc books, for its whole
// window, in one Multi: its bookings are deleted and its record becomes
// Cancelled (kept, so that peers tear the VC down, until Purge). Cancelling
// a cancelled reservation does nothing.
func (r *Reserver) Cancel(ctx context.Context, vc string) (Record, error) {
	return r.update(ctx, vc, "cancelled", func(rec Record, version int32) (Record, []coord.Op, bool, error) {
		if rec.State == Cancelled {
			return rec, nil, false, nil
		}
		entries := rec.Entries()
		ops, err := r.rebookOps(ctx, vc, entries, nil)
		if err != nil {
			return Record{}, nil, false, err
		}
		for _, e := range entries {
			ops = append(ops, &coord.DeleteOp{Path: entryPath(e), Version: coord.AnyVersion})
		}
		next := rec
		next.State = Cancelled
		next.Updated = r.cfg.Now()
		rops, err := recordOps(next, version)
		if err != nil {
			return Record{}, nil, false, err
		}
		return next, append(ops, rops...), true, nil
	}, func(prev, got Record, found bool) bool {
		return found && got.RequestID == prev.RequestID && got.State == Cancelled
	})
}

// Release ends the reservation of vc early, at instant at: its window and
// every booking now end at at, freeing the rest of the window, in one
// Multi. Releasing at or before the window's start cancels it; releasing
// at or after its end does nothing. A cancelled reservation gives
// ErrCancelled.
func (r *Reserver) Release(ctx context.Context, vc string, at time.Time) (Record, error) {
	rec, err := r.release(ctx, vc, at)
	if errors.Is(err, errReleaseIsCancel) {
		return r.Cancel(ctx, vc)
	}
	return rec, err
}

// errReleaseIsCancel: the release empties the window, so it is a Cancel.
var errReleaseIsCancel = errors.New("reserve: release before the window starts")

func (r *Reserver) release(ctx context.Context, vc string, at time.Time) (Record, error) {
	return r.update(ctx, vc, "released", func(rec Record, version int32) (Record, []coord.Op, bool, error) {
		if rec.State == Cancelled {
			return Record{}, nil, false, fmt.Errorf("%w: %s", ErrCancelled, vc)
		}
		nw := admission.ReleaseWindow(rec.Window, at)
		if nw == rec.Window || nw.End.Equal(rec.Window.End) {
			return rec, nil, false, nil
		}
		if !nw.Start.Before(nw.End) {
			return Record{}, nil, false, errReleaseIsCancel
		}
		next := rec
		next.Window = nw
		next.State = Released
		next.Updated = r.cfg.Now()
		entries := next.Entries()
		ops, err := r.rebookOps(ctx, vc, rec.Entries(), entries)
		if err != nil {
			return Record{}, nil, false, err
		}
		for _, e := range entries {
			data, err := json.Marshal(e)
			if err != nil {
				return Record{}, nil, false, err
			}
			ops = append(ops, &coord.SetOp{Path: entryPath(e), Data: data, Version: coord.AnyVersion})
		}
		rops, err := recordOps(next, version)
		if err != nil {
			return Record{}, nil, false, err
		}
		return next, append(ops, rops...), true, nil
	}, func(prev, got Record, found bool) bool {
		return found && got.RequestID == prev.RequestID && got.State == Released && got.Window.End.Equal(admission.ReleaseWindow(prev.Window, at).End)
	})
}

// Purge removes an ended or cancelled reservation altogether: first the
// VC's subtree, then, in one Multi, its remaining bookings and its record,
// which frees the VC name. An interrupted Purge can be repeated. A
// reservation still active gives ErrActive; a missing one ErrNotFound.
func (r *Reserver) Purge(ctx context.Context, vc string) error {
	rec, _, err := r.get(ctx, vc)
	if err != nil {
		return err
	}
	if !rec.Ended(r.cfg.Now()) {
		return fmt.Errorf("%w: %s holds its resources until %v", ErrActive, vc, rec.Window.End)
	}
	if err := r.deleteTree(ctx, coord.VCPath(vc)); err != nil {
		return err
	}
	_, err = r.update(ctx, vc, "purged", func(rec Record, version int32) (Record, []coord.Op, bool, error) {
		entries := rec.Entries()
		ops, err := r.rebookOps(ctx, vc, entries, nil)
		if err != nil {
			return Record{}, nil, false, err
		}
		for _, e := range entries {
			ops = append(ops, &coord.DeleteOp{Path: entryPath(e), Version: coord.AnyVersion})
		}
		ops = append(ops, &coord.DeleteOp{Path: coord.ReservationPath(vc), Version: version})
		return rec, ops, true, nil
	}, func(prev, got Record, found bool) bool {
		return !found || got.RequestID != prev.RequestID
	})
	return err
}

// deleteTree deletes p and everything under it; a missing node is fine.
func (r *Reserver) deleteTree(ctx context.Context, p string) error {
	for attempt := 1; ; attempt++ {
		kids, _, err := r.store.Children(ctx, p)
		if errors.Is(err, coord.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reserve: purge %s: %w", p, err)
		}
		for _, k := range kids {
			if err := r.deleteTree(ctx, p+"/"+k); err != nil {
				return err
			}
		}
		err = r.store.Delete(ctx, p, coord.AnyVersion)
		switch {
		case err == nil, errors.Is(err, coord.ErrNotFound):
			return nil
		case errors.Is(err, coord.ErrNotEmpty) && attempt < r.cfg.MaxAttempts:
			continue // a child appeared meanwhile
		case errors.Is(err, coord.ErrConnectionLost) && attempt < r.cfg.MaxAttempts:
			continue // deleted or not: the next round finds out
		}
		return fmt.Errorf("reserve: purge %s: %w", p, err)
	}
}
