package executor

import (
	"errors"
	"strings"
	"syscall"
)

// Sentinel errors returned (wrapped) by Run. Test with errors.Is.
//
// Run returns a non-nil error only when the job did not run. Errors that
// match ErrJobError are the job's own fault and would fail on any host
// (Grid Engine puts such jobs in the Eqw state); the Result that comes with
// them carries Grid Engine's failed code and error reason. Any other error is
// this host's or the caller's problem: the job may be retried elsewhere.
var (
	// ErrJobError: the job cannot start because of its own settings (a
	// missing output directory, working directory or shell). Matches every
	// *StartError. Map it to Grid Engine's Eqw state.
	ErrJobError = errors.New("executor: job error")
	// ErrOutputFile: an -o/-e file cannot be opened (failed 26).
	ErrOutputFile = errors.New("executor: can't open output file")
	// ErrNoShell: the shell (-S) or the -shell no binary cannot be found or
	// executed (failed 27).
	ErrNoShell = errors.New("executor: can't find shell")
	// ErrNoWorkdir: the working directory cannot be entered (failed 28).
	ErrNoWorkdir = errors.New("executor: can't chdir to working directory")
	// ErrInvalidRequest: the request is malformed (caller bug).
	ErrInvalidRequest = errors.New("executor: invalid request")
	// ErrNotPermitted: this runner may not run jobs of the requested user
	// (it is not root and the user is not its own, or the uid is below
	// Runner.MinUID).
	ErrNotPermitted = errors.New("executor: not permitted to run job as this user")
	// ErrHost: this host failed to prepare the job (spool directory, TMPDIR,
	// prlimit missing...). The job itself may run elsewhere.
	ErrHost = errors.New("executor: host error")
	// ErrUnsupported: the platform cannot run jobs (not Linux).
	ErrUnsupported = errors.New("executor: unsupported platform")
)

// Grid Engine "failed" codes (qacct's failed field) that Run reports.
const (
	FailedNone       = 0   // no failure
	FailedOutputFile = 26  // "opening input/output file"
	FailedNoShell    = 27  // "searching requested shell"
	FailedNoWorkdir  = 28  // "changing to working directory"
	FailedLimit      = 37  // "qmaster enforced h_rt, h_cpu, or h_vmem limit"
	FailedAfterJob   = 100 // "assumedly after job" (killed by qdel)
)

// StartError is a job error: the job could not start because of its own
// settings. It matches ErrJobError and one of ErrOutputFile, ErrNoShell or
// ErrNoWorkdir, and unwraps to the system error that caused it.
type StartError struct {
	// Failed is Grid Engine's failed code (FailedOutputFile, FailedNoShell,
	// FailedNoWorkdir).
	Failed int
	// Reason is Grid Engine's error text, e.g.
	// `error: can't open output file "/x/y.out": No such file or directory`
	// (qstat -j prints it after "error reason 1: <date> [uid:pid]: ").
	Reason string
	kind   error
	err    error
}

func (e *StartError) Error() string { return e.Reason }

// Unwrap returns ErrJobError, the kind sentinel and the cause.
func (e *StartError) Unwrap() []error {
	errs := []error{ErrJobError, e.kind}
	if e.err != nil {
		errs = append(errs, e.err)
	}
	return errs
}

// strerror renders a system error the way C's strerror does ("No such file
// or directory"), which is how Grid Engine's messages print it.
func strerror(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		if s != "" {
			return strings.ToUpper(s[:1]) + s[1:]
		}
	}
	if err == nil {
		return ""
	}
	return err.Error()
}
