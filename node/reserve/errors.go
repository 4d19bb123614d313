package reserve

import "errors"

// Sentinel errors. Test with errors.Is. A refused admission returns an
// error wrapping *admission.Refusal (and admission.ErrRefused).
var (
	// ErrVCExists: a reservation (or a leftover VC subtree) already uses
	// the VC name.
	ErrVCExists = errors.New("reserve: VC name already in use")
	// ErrNotFound: no reservation of that VC.
	ErrNotFound = errors.New("reserve: no such reservation")
	// ErrContention: the admission conflicted with concurrent ones more
	// often than Config.MaxAttempts allows.
	ErrContention = errors.New("reserve: too many conflicting attempts")
	// ErrCorrupt: a record in the store is malformed or inconsistent with
	// its path.
	ErrCorrupt = errors.New("reserve: malformed record")
	// ErrInvalid: a request, host or argument is malformed.
	ErrInvalid = errors.New("reserve: invalid argument")
	// ErrActive: the reservation's window has not ended and it was not
	// cancelled, so it cannot be purged.
	ErrActive = errors.New("reserve: reservation still active")
	// ErrCancelled: the reservation was cancelled.
	ErrCancelled = errors.New("reserve: reservation cancelled")
)
