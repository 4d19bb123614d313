// Package executor runs one Grid Engine compatible job (or one array task)
// on this host, the way Grid Engine 8.1.9's execd and shepherd do.
//
// A Runner takes a self-contained Request (it does not depend on the queue
// or on the qsub parser; the queue adapts its job records to it) and:
//
//   - spools the script into a private per-run directory under
//     Request.SpoolDir, writes the PE hostfile there ("host slots queue
//     processors", as Grid Engine), and creates TMPDIR/TMP owned by the job
//     user; all of it is removed before Run returns;
//   - resolves the -o/-e paths exactly like Grid Engine: default
//     <name>.o<job>[.<task>] and .e in the working directory, pseudo
//     variables $JOB_ID $JOB_NAME $TASK_ID $USER $HOSTNAME $HOME, "~/",
//     [host:]path lists, existing directories, relative paths against the
//     working directory (-cwd/-wd, else $HOME), -j y, appending;
//   - checks the working directory, opens the output files and looks for
//     the shell with the job user's file-system credentials, so a job can
//     neither read nor write through root's rights; failures there are the
//     job's own (Grid Engine puts such a job in Eqw) and are reported as
//     errors matching ErrJobError;
//   - runs the script with the -S shell (default /bin/sh) in Grid Engine's
//     posix_compliant mode (shell script args..., the #! line is ignored),
//     binary jobs (-b y) as shell -c "command args...", -shell no binaries
//     directly; as the job user (setuid/setgid/setgroups when running as
//     root), in a new process group, with stdin /dev/null and Grid Engine's
//     job environment (see Environment);
//   - enforces h_rt (SIGKILL to the process group, failed 37), s_rt
//     (SIGUSR1 to the process group) and h_vmem/h_cpu (RLIMIT_AS/RLIMIT_CPU
//     set by prlimit(1) before the shell starts);
//   - kills the whole process group with SIGKILL when the context is
//     cancelled (qdel, failed 100), and after the job's main process exits,
//     so that nothing of the job outlives it;
//   - ties the job's main process to the runner's process (parent-death
//     signal SIGKILL), so that a killed runner's job does not run on beside
//     its rerun, and records the job's process group in its spool
//     directory, so that KillLeftovers (run when the next runner starts)
//     kills what the job started;
//   - reports accounting from the job's rusage: wall clock, user and system
//     CPU, maximum RSS, exit status or signal, and Grid Engine's "failed"
//     code.
package executor
