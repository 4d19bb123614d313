package lifecycle

import "errors"

// Sentinel errors. Test with errors.Is.
var (
	// ErrConfig: the Config is unusable (missing store, site or driver).
	ErrConfig = errors.New("lifecycle: invalid configuration")
	// ErrNoDriver: a placement names a compute or storage host this peer
	// has no driver for.
	ErrNoDriver = errors.New("lifecycle: no driver for host")
	// ErrImage: the VC's application image cannot be resolved.
	ErrImage = errors.New("lifecycle: image not available")
	// ErrAttach: a volume could not be attached to a node.
	ErrAttach = errors.New("lifecycle: attach failed")
	// ErrGone: the VC's subtree no longer exists (the reservation was
	// purged), so its records cannot be written.
	ErrGone = errors.New("lifecycle: VC subtree gone")
)
