package sge

import (
	"io"
)

// QsubRun is qsub's whole behaviour, with the actual submission and the
// -sync wait done by the caller's functions.
type QsubRun struct {
	Request QsubRequest
	// Cluster is what qmaster's checks compare against.
	Cluster Cluster
	// Submit queues the job and returns its id; an *Error it returns is
	// printed as is, any other error as "Unable to run job: <err>".
	Submit func(spec *JobSpec) (int64, error)
	// Wait blocks until every task of a -sync y job has ended and returns
	// how each ended, in the order they ended (nil: -sync is not
	// supported and qsub returns at once).
	Wait func(id int64, spec *JobSpec) ([]SyncResult, error)
	// Stdout and Stderr receive qsub's output.
	Stdout, Stderr io.Writer
}

// RunQsub runs qsub: parse, print -help or warnings, check like qmaster,
// submit, print the submission message and, with -sync y, wait and print
// how the job ended. It returns qsub's exit status.
func RunQsub(r QsubRun) int {
	res, err := ParseQsub(r.Request)
	if err != nil {
		return WriteError(r.Stderr, err)
	}
	if res.Help {
		_ = WriteHelp(r.Stdout, "qsub")
		return 0
	}
	for _, w := range res.Warnings {
		_, _ = io.WriteString(r.Stdout, w+"\n")
	}
	spec := &res.Spec
	if err := r.Cluster.Validate(spec); err != nil {
		return WriteError(r.Stderr, err)
	}
	if spec.VerifyOnly {
		_ = WriteVerify(r.Stdout, spec, r.Request.Location)
		return 0
	}
	if spec.Verify == "v" {
		_, _ = io.WriteString(r.Stdout, VerifyMessage+"\n")
		return 0
	}
	id, err := r.Submit(spec)
	if err != nil {
		var e *Error
		if !asError(err, &e) {
			err = rejectErr(err.Error())
		}
		return WriteError(r.Stderr, err)
	}
	if err := WriteSubmitted(r.Stdout, id, spec); err != nil {
		return 1
	}
	if !spec.Sync || r.Wait == nil {
		return 0
	}
	results, err := r.Wait(id, spec)
	for _, res := range results {
		_, _ = io.WriteString(r.Stderr, SyncMessage(id, res)+"\n")
	}
	if err != nil {
		_, _ = io.WriteString(r.Stderr, "\nUnable to wait for job "+JobIDString(id, spec)+": "+err.Error()+"\n")
		return 1
	}
	return SyncExitCode(results)
}
