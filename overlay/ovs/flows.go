package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	of13 "antrea.io/libOpenflow/openflow13"
	"antrea.io/libOpenflow/util"

	"github.com/musubi-fabric/musubi/overlay"
)

// ownedGenerationMask selects musubi's flows of one generation, whatever
// their VC.
const ownedGenerationMask = uint64(overlay.CookieOwnerMask | overlay.CookieReservedMask | overlay.CookieGenerationMask)

// FlowPlan counts what one flow reconciliation did.
type FlowPlan struct {
	Added, Unchanged, StrictDeletes int
	// StaleGenerations were removed with one cookie-masked delete each;
	// MaskDeleted is the number of flows those deletes covered.
	StaleGenerations []uint32
	MaskDeleted      int
}

// syncFlows makes the musubi-owned flows of the switch exactly want.Flows:
// phase 1 adds new and changed flows (an add with the identity of an
// existing flow replaces it atomically, so a flow that only changes
// generation never disappears); phase 2 deletes each stale generation with
// one cookie-masked delete and the remaining unwanted flows of the current
// generation with strict deletes. Each phase ends with a barrier.
func (d *Dataplane) syncFlows(ctx context.Context, oc *ofConn, res resolver, want overlay.Desired) error {
	raws, err := oc.dumpFlows(ctx)
	if err != nil {
		return fmt.Errorf("%w: dump flows: %w", overlay.ErrUnavailable, err)
	}
	type current struct {
		raw  rawFlow
		flow overlay.Flow
		full bool // flow decodes completely
	}
	cur := map[string]current{}
	keyOf := make([]string, len(raws)) // "" when the match does not decode
	for i, r := range raws {
		m, ok := r.decodeMatch(res)
		if !ok {
			continue
		}
		fl, full := r.decode(res)
		fl.Table, fl.Priority, fl.Match = r.table, r.priority, m
		k := fl.Key()
		keyOf[i] = k
		cur[k] = current{raw: r, flow: fl, full: full}
	}
	var plan FlowPlan
	var errs []error
	var adds []util.Message
	var addXids []uint32
	wanted := make(map[string]bool, len(want.Flows))
	for _, f := range want.Flows {
		k := f.Key()
		wanted[k] = true
		if c, ok := cur[k]; ok {
			if c.full && c.flow.Equal(f) {
				plan.Unchanged++
				continue
			}
			if !overlay.Cookie(c.raw.cookie).Owned() {
				errs = append(errs, fmt.Errorf("%w: flow %s (cookie %#x) has the identity of a wanted flow", ErrForeign, k, c.raw.cookie))
				continue
			}
		}
		fm, err := encodeFlow(f, res)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		x := oc.nextXid()
		fm.Xid = x
		adds = append(adds, fm)
		addXids = append(addXids, x)
	}
	plan.Added = len(adds)
	if err := oc.batch(ctx, adds, addXids); err != nil {
		errs = append(errs, err)
	}
	d.changes.Add(uint64(len(adds)))
	// Phase 2: deletes.
	clean := len(errs) == 0
	var dels []util.Message
	var delXids []uint32
	stale := map[uint32]bool{}
	for i, r := range raws {
		c := overlay.Cookie(r.cookie)
		if !c.Owned() || (keyOf[i] != "" && wanted[keyOf[i]]) {
			continue
		}
		if c.Generation() != want.Generation && clean {
			stale[c.Generation()] = true
			plan.MaskDeleted++
			continue
		}
		if r.match == nil {
			d.log.Warn("cannot delete an undecodable musubi flow", "flow", r.text(res))
			continue
		}
		x := oc.nextXid()
		dels = append(dels, flowModRaw(x, of13.FC_DELETE_STRICT, r.table, r.priority, r.cookie, ^uint64(0), r.match))
		delXids = append(delXids, x)
		plan.StrictDeletes++
	}
	for _, g := range slices.Sorted(maps.Keys(stale)) {
		x := oc.nextXid()
		dels = append(dels, flowModRaw(x, of13.FC_DELETE, of13.OFPTT_ALL, 0, uint64(overlay.NewCookie(0, g)), ownedGenerationMask, nil))
		delXids = append(delXids, x)
		plan.StaleGenerations = append(plan.StaleGenerations, g)
	}
	if err := oc.batch(ctx, dels, delXids); err != nil {
		errs = append(errs, err)
	}
	d.changes.Add(uint64(plan.StrictDeletes + plan.MaskDeleted))
	if plan.Added > 0 || len(dels) > 0 {
		d.log.Info("flows reconciled", "generation", want.Generation, "added", plan.Added, "unchanged", plan.Unchanged,
			"strict_deletes", plan.StrictDeletes, "stale_generations", plan.StaleGenerations)
	}
	d.mu.Lock()
	d.lastPlan = plan
	d.mu.Unlock()
	return errors.Join(errs...)
}

// LastFlowPlan reports what the most recent flow reconciliation did.
func (d *Dataplane) LastFlowPlan() FlowPlan {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastPlan
}

// Changes counts the changes Apply made to the switch: tunnels and ports
// created, updated or deleted, and flows added, replaced or deleted
// (dataplanetest.ChangeCounter).
func (d *Dataplane) Changes() uint64 { return d.changes.Load() }
