package sge

import (
	"errors"
	"io"
	"strings"
)

// Sentinel errors; every *Error unwraps to exactly one of them, chosen by its
// Kind.
var (
	// ErrUsage is a bad command line: unknown option, missing or malformed
	// option argument. Nothing is submitted or changed.
	ErrUsage = errors.New("sge: invalid command line")
	// ErrScript is a job script (or -@ option file) that cannot be read or
	// holds a bad "#$" directive.
	ErrScript = errors.New("sge: cannot read job script")
	// ErrRejected is a submission that Grid Engine's qmaster would refuse
	// (bad job name, unknown resource, parallel environment or queue, ...).
	ErrRejected = errors.New("sge: job rejected")
	// ErrFailed is any other failure a command reports with a plain message
	// (unknown job in qdel, qacct, qstat -j, ...).
	ErrFailed = errors.New("sge: command failed")
)

// Grid Engine's answer status codes; qsub exits with them.
const (
	statusESemantic = 2  // STATUS_ESEMANTIC
	statusEUnknown  = 4  // STATUS_EUNKNOWN
	statusENoImp    = 5  // STATUS_ENOIMP
	statusESyntax   = 7  // STATUS_ESYNTAX
	statusEDisk     = 14 // STATUS_EDISK
)

// Kind says how a command reports an *Error.
type Kind int

// Kinds of errors.
const (
	// KindUsage prints "<command>: <message>" (qsub, qalter option errors).
	KindUsage Kind = iota + 1
	// KindScript prints "Unable to read script file because of error: <message>".
	KindScript
	// KindRejected prints "Unable to run job: <message>" then "Exiting.".
	KindRejected
	// KindUsageText prints the command's usage text, then the message
	// (qstat, qdel, qhold, qrls, qhost, qacct option errors).
	KindUsageText
	// KindPlain prints the message alone.
	KindPlain
)

// Error is a Grid Engine error: its message exactly as Grid Engine words it,
// how it is printed, and the command's exit code.
type Error struct {
	Kind    Kind
	Command string // "qsub", "qstat", ... (used by KindUsage and KindUsageText)
	Msg     string // the message, without prefix or trailing newline
	Exit    int    // the command's exit status
}

// Error returns the message in the form the command prints it (without the
// usage text of KindUsageText).
func (e *Error) Error() string {
	switch e.Kind {
	case KindUsage:
		return e.Command + ": " + e.Msg
	case KindScript:
		return "Unable to read script file because of error: " + e.Msg
	case KindRejected:
		return "Unable to run job: " + e.Msg
	default:
		return e.Msg
	}
}

// Unwrap returns the sentinel error of the kind.
func (e *Error) Unwrap() error {
	switch e.Kind {
	case KindUsage, KindUsageText:
		return ErrUsage
	case KindScript:
		return ErrScript
	case KindRejected:
		return ErrRejected
	default:
		return ErrFailed
	}
}

// Text is everything the command writes to stderr for this error, each line
// newline-terminated.
func (e *Error) Text() string {
	switch e.Kind {
	case KindRejected:
		return e.Error() + "\nExiting.\n"
	case KindUsageText:
		if e.Msg == "" {
			return HelpText(e.Command)
		}
		return HelpText(e.Command) + e.Msg + "\n"
	default:
		return e.Error() + "\n"
	}
}

// ExitCode returns the exit status of the command that failed with err: the
// *Error's code, 1 for any other non-nil error and 0 for nil.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Exit
	}
	return 1
}

// WriteError writes err the way Grid Engine prints it (Text for an *Error,
// err.Error() plus a newline otherwise) and returns the exit code.
func WriteError(w io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		_, _ = io.WriteString(w, e.Text())
		return e.Exit
	}
	_, _ = io.WriteString(w, strings.TrimRight(err.Error(), "\n")+"\n")
	return 1
}

func usageErr(cmd string, exit int, msg string) *Error {
	return &Error{Kind: KindUsage, Command: cmd, Msg: msg, Exit: exit}
}

func scriptErr(exit int, msg string) *Error {
	return &Error{Kind: KindScript, Msg: msg, Exit: exit}
}

func rejectErr(msg string) *Error {
	return &Error{Kind: KindRejected, Msg: msg, Exit: 1}
}

func usageTextErr(cmd, msg string) *Error {
	return &Error{Kind: KindUsageText, Command: cmd, Msg: msg, Exit: 1}
}

func plainErr(exit int, msg string) *Error {
	return &Error{Kind: KindPlain, Msg: msg, Exit: exit}
}

func asError(err error, target **Error) bool { return errors.As(err, target) }
