package localfed

import "errors"

// Sentinel errors. Test with errors.Is.
var (
	// ErrInvalid: the options are unusable (the message names the flag).
	ErrInvalid = errors.New("localfed: invalid options")
	// ErrNotAvailable: a prerequisite is missing (not root, a program not
	// installed).
	ErrNotAvailable = errors.New("localfed: not available here")
	// ErrExists: a local federation (or something in its way: a
	// namespace, a route) already exists.
	ErrExists = errors.New("localfed: already exists")
	// ErrNoFederation: the directory records no local federation.
	ErrNoFederation = errors.New("localfed: no local federation")
	// ErrBusy: another `musubi local` command works on the directory.
	ErrBusy = errors.New("localfed: directory in use")
	// ErrNoSite: no such site in the federation.
	ErrNoSite = errors.New("localfed: no such site")
	// ErrStep: a step of Up failed (a command, a daemon, a timeout).
	ErrStep = errors.New("localfed: bring-up failed")
	// ErrTeardown: Down could not remove everything; local.json keeps
	// what is left.
	ErrTeardown = errors.New("localfed: teardown incomplete")
)
