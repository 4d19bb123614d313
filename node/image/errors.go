package image

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrInvalid: a configuration value or an image id is malformed.
	ErrInvalid = errors.New("image: invalid")
	// ErrMissing: an input is not installed (kernel package, busybox,
	// payload file, host tool).
	ErrMissing = errors.New("image: input missing")
	// ErrNotFound: no image with that id in the store.
	ErrNotFound = errors.New("image: not found")
	// ErrCorrupt: a stored image's files do not match its manifest.
	ErrCorrupt = errors.New("image: corrupt")
	// ErrCommand: a host tool failed.
	ErrCommand = errors.New("image: command failed")
)
