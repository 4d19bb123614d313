package jobqueue

import "sync/atomic"

// Stats are counters of a Queue and its Executors since New, for tests,
// benchmarks and metrics.
type Stats struct {
	// UnknownResolved counts writes whose outcome was unknown
	// (coord.ErrConnectionLost) and was resolved by reading back;
	// UnknownApplied how many of them had been applied.
	UnknownResolved int64
	UnknownApplied  int64
	// Claims counts successful claims, LostRaces claim attempts another
	// consumer won, Relists listings of the queue.
	Claims    int64
	LostRaces int64
	Relists   int64
	// Settled counts claims and tasks settled by their executor.
	Settled int64
	// Recovered counts claims of dead executors given back to the queue
	// (or finished as deleted).
	Recovered int64
	// LeasesLost counts leases whose claim vanished under their executor.
	LeasesLost int64
	// Tries counts queue entries evaluated for a claim, Gone those found
	// stale (claimed or changed by someone else since the listing).
	Tries int64
	Gone  int64
}

type stats struct {
	unknownResolved, unknownApplied atomic.Int64
	claims, lostRaces, relists      atomic.Int64
	settled, recovered, leasesLost  atomic.Int64
	tries, gone                     atomic.Int64
}

func (s *stats) unknown(applied bool) {
	s.unknownResolved.Add(1)
	if applied {
		s.unknownApplied.Add(1)
	}
}

// Stats returns the counters.
func (q *Queue) Stats() Stats {
	s := &q.stats
	return Stats{
		UnknownResolved: s.unknownResolved.Load(),
		UnknownApplied:  s.unknownApplied.Load(),
		Claims:          s.claims.Load(),
		LostRaces:       s.lostRaces.Load(),
		Relists:         s.relists.Load(),
		Settled:         s.settled.Load(),
		Recovered:       s.recovered.Load(),
		LeasesLost:      s.leasesLost.Load(),
		Tries:           s.tries.Load(),
		Gone:            s.gone.Load(),
	}
}
