package reserve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/admission"
)

// RegisterHost creates or updates the timetable resource of a compute
// host with its capacity. Lowering a capacity below what is booked is
// allowed: admitted reservations keep their bookings (first come, first
// served), and nothing new is admitted there until they end.
func (r *Reserver) RegisterHost(ctx context.Context, h admission.Host) error {
	if err := (admission.Timetable{Hosts: []admission.Host{h}}).Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return r.register(ctx, ResourceRecord{Kind: admission.KindHost, Name: h.Name, Site: h.Site, MemoryMiB: h.MemoryMiB, VCPUs: h.VCPUs})
}

// RegisterStorage creates or updates the timetable resource of a storage
// host with its capacity (see RegisterHost).
func (r *Reserver) RegisterStorage(ctx context.Context, s admission.StorageHost) error {
	if err := (admission.Timetable{Storage: []admission.StorageHost{s}}).Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return r.register(ctx, ResourceRecord{Kind: admission.KindStorage, Name: s.Name, Site: s.Site, Bytes: s.Bytes})
}

func (r *Reserver) register(ctx context.Context, rr ResourceRecord) error {
	name := coord.TimetableResourceName(string(rr.Kind), rr.Name)
	if err := coord.ValidName(name); err != nil {
		return fmt.Errorf("%w: resource name of %s %s is too long: %v", ErrInvalid, rr.Kind, rr.Name, err)
	}
	if err := r.ensureDirs(ctx); err != nil {
		return err
	}
	rr.Bookings = []admission.Entry{}
	data, err := json.Marshal(rr)
	if err != nil {
		return err
	}
	path := resourcePath(rr.Kind, rr.Name)
	for attempt := 1; ; attempt++ {
		_, err := r.store.Create(ctx, path, data, coord.Persistent, nil)
		if err == nil {
			return nil
		}
		if !errors.Is(err, coord.ErrExists) && !(coord.Retryable(err) && attempt < r.cfg.MaxAttempts) {
			return fmt.Errorf("reserve: register %s: %w", path, err)
		}
		old, st, err := r.store.Get(ctx, path)
		if err != nil && !errors.Is(err, coord.ErrNotFound) && !(coord.Retryable(err) && attempt < r.cfg.MaxAttempts) {
			return fmt.Errorf("reserve: register %s: %w", path, err)
		}
		if err != nil {
			continue
		}
		prev, err := decodeResource(path, old)
		if err != nil {
			return err
		}
		if prev.sameCapacity(rr) {
			return nil
		}
		// Keep the bookings; a version-checked Set, like every change of a
		// resource, so that admissions that read the old capacity conflict.
		next := rr
		next.Bookings = prev.Bookings
		ndata, err := json.Marshal(next)
		if err != nil {
			return err
		}
		_, err = r.store.Set(ctx, path, ndata, st.Version)
		if err == nil {
			return nil
		}
		if !errors.Is(err, coord.ErrBadVersion) && !coord.Retryable(err) || attempt >= r.cfg.MaxAttempts {
			return fmt.Errorf("reserve: register %s: %w", path, err)
		}
	}
}
