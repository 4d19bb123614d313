package jobqueue

import "errors"

// Sentinel errors returned (possibly wrapped) by the queue. Test with
// errors.Is.
var (
	// ErrNoSuchJob: no active or finished job has this id (qstat's
	// "Following jobs do not exist", qdel's "denied: job ... does not exist").
	ErrNoSuchJob = errors.New("jobqueue: no such job")
	// ErrIllegalTransition: the requested state change is not allowed from
	// the job's current state.
	ErrIllegalTransition = errors.New("jobqueue: illegal state transition")
	// ErrInvalidSpec: the job specification cannot be queued (bad name,
	// priority out of range, bad task range...).
	ErrInvalidSpec = errors.New("jobqueue: invalid job specification")
	// ErrFinished: the job has already finished; it can no longer be
	// changed.
	ErrFinished = errors.New("jobqueue: job already finished")
	// ErrAlreadyDeleting: the job is already being deleted (Grid Engine's
	// "job J is already in deletion").
	ErrAlreadyDeleting = errors.New("jobqueue: job already in deletion")
	// ErrPermission: the user may not modify another user's job.
	ErrPermission = errors.New("jobqueue: permission denied")
	// ErrLeaseLost: the executor no longer holds the claim of this lease
	// (its session ended, so the job may run again elsewhere); the result
	// was not recorded.
	ErrLeaseLost = errors.New("jobqueue: lease lost")
	// ErrLeaseSettled: Complete or Release was already called on the lease.
	ErrLeaseSettled = errors.New("jobqueue: lease already settled")
	// ErrNotRunning: the executor's Run loop is not running (Claim needs
	// it: it registers the host and watches for qdel signals).
	ErrNotRunning = errors.New("jobqueue: executor not running")
	// ErrCorrupt: a record in the store cannot be decoded.
	ErrCorrupt = errors.New("jobqueue: corrupt record")
)
