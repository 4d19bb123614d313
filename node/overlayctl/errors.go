package overlayctl

import "errors"

// Sentinel errors, wrapped by the errors this package returns.
var (
	// ErrConfig: the Config is invalid.
	ErrConfig = errors.New("overlayctl: invalid configuration")
	// ErrBadRecord: a VC node record is malformed or contradicts its path.
	ErrBadRecord = errors.New("overlayctl: bad record")
	// ErrRunning: Run was called while another Run of the same Controller
	// was running.
	ErrRunning = errors.New("overlayctl: already running")
)
