// Package sge is the pure Grid Engine (SGE 8.1.9) front end of musubi's batch
// system: it parses the command lines of qsub, qstat, qdel, qhold, qrls,
// qalter, qhost and qacct, reads "#$" directives out of job scripts the way
// Grid Engine does, and formats every output those commands print, byte for
// byte like the reference outputs captured from a real Grid Engine cell
// (../shared/sge-reference).
//
// The package does no I/O of its own. Callers hand it the command line, the
// submitter's context (user, host, working directory, environment), file
// contents through a ReadFile function, and an io.Writer for output. The
// central type is JobSpec, the JSON-serialisable description of a submitted
// job that the rest of the system stores; the formatters take view types
// (JobView, JobDetail, HostView, AccountingRecord) that are independent of how
// jobs are stored.
//
// Errors are *Error values carrying Grid Engine's message, the way the
// command prints it, and its exit code.
package sge
