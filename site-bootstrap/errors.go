package sitebootstrap

import "errors"

// Sentinel errors of site bootstrap.
var (
	// ErrConfig: the configuration is invalid (the message names the flag).
	ErrConfig = errors.New("sitebootstrap: invalid configuration")
	// ErrToken: the token file is missing, malformed or too widely readable.
	ErrToken = errors.New("sitebootstrap: bad token")
	// ErrTokenRejected: the federation refused the token (its root's ACL
	// does not grant the token's credential).
	ErrTokenRejected = errors.New("sitebootstrap: token rejected by the federation")
	// ErrMissingPackages: required Debian packages are not installed and
	// installing them was not allowed.
	ErrMissingPackages = errors.New("sitebootstrap: required Debian packages missing")
	// ErrOtherSite: the state directory belongs to another site or
	// federation.
	ErrOtherSite = errors.New("sitebootstrap: state directory belongs to another site")
	// ErrNotBootstrapped: the state directory holds no site.
	ErrNotBootstrapped = errors.New("sitebootstrap: no site in this state directory")
	// ErrLastSite: the site is the ensemble's last voter and cannot leave.
	ErrLastSite = errors.New("sitebootstrap: the last voting site cannot leave the ensemble")
	// ErrNotConverged: a step's Apply returned but its Check still fails.
	ErrNotConverged = errors.New("sitebootstrap: step did not converge")
	// ErrDaemon: a daemon failed to start or to serve.
	ErrDaemon = errors.New("sitebootstrap: daemon failed")
)
