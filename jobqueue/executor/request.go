package executor

import "time"

// Request is one job, or one task of an array job, to run on this host. It is
// self-contained: the queue fills it from its job record.
type Request struct {
	// JobID is the Grid Engine job id (> 0).
	JobID int64
	// TaskID is the array task id; 0 means the job is not an array job.
	TaskID int
	// TaskFirst, TaskLast and TaskStep are the array's -t range (array jobs
	// only; TaskStep 0 means 1).
	TaskFirst, TaskLast, TaskStep int
	// JobName is -N, or the default name the submitter computed (script
	// basename, "STDIN", or the basename of the -b y command).
	JobName string

	// Script is the spooled job script (not a binary job). It is written to
	// the per-run spool directory and run as `shell <script> Args...`.
	Script []byte
	// Binary is -b y: Command and Args are run as `shell -c "Command Args..."`
	// (the arguments are re-parsed by the shell, as in Grid Engine).
	Binary bool
	// NoShell is -shell no (binary jobs only): Command is executed directly,
	// looked up in the job's PATH, with Args verbatim.
	NoShell bool
	// Command is the -b y command (binary jobs).
	Command string
	// Args are the script or command arguments, verbatim.
	Args []string
	// Shell is -S; "" means /bin/sh (the queue's shell in posix_compliant
	// mode). It must be an absolute path.
	Shell string

	// User is the submitting user; the job runs with UID, GID and Groups.
	User string
	// UID, GID and Groups (supplementary groups) of User on this host.
	UID, GID uint32
	Groups   []uint32
	// Home is the user's home directory ($HOME); "" means look it up in the
	// host's user database.
	Home string

	// SubmitHost is SGE_O_HOST, SubmitCwd is SGE_O_WORKDIR (the directory
	// qsub ran in). The other Submit* fields become SGE_O_HOME, SGE_O_PATH,
	// SGE_O_SHELL, SGE_O_LOGNAME, SGE_O_MAIL and SGE_O_TZ when not empty
	// (qsub copies them from its own HOME, PATH, SHELL, LOGNAME, MAIL, TZ).
	SubmitHost, SubmitCwd               string
	SubmitHome, SubmitPath, SubmitShell string
	SubmitLogname, SubmitMail, SubmitTZ string
	// Workdir is the job's working directory: the resolved -cwd or -wd
	// directory (absolute), or "" for the user's home directory.
	Workdir string

	// Stdout and Stderr are the raw -o and -e values: "" for the default,
	// otherwise [[host]:]path[,[host]:path...] possibly naming a directory
	// and containing $JOB_ID $JOB_NAME $TASK_ID $USER $HOSTNAME $HOME or a
	// leading ~/ or ~user/.
	Stdout, Stderr string
	// Join is -j y: stderr goes to the stdout file.
	Join bool

	// Env holds the -v and -V variables. Grid Engine's own variables
	// override them, except PATH and TERM which they may set.
	Env map[string]string

	// Queue is the cluster queue name ($QUEUE); "" means "all.q".
	Queue string
	// Slots is $NSLOTS, the slots granted to the job in total; 0 means the
	// sum of PEHosts' slots, or 1.
	Slots int
	// PEName is the parallel environment (-pe); "" for none.
	PEName string
	// PEHosts lists the hosts granted to a parallel job, master host first;
	// it becomes $PE_HOSTFILE. Empty with a PE means this host alone.
	PEHosts []PEHost
	// Account is -A ($SGE_ACCOUNT); "" means "sge".
	Account string
	// Restarted is true when the job runs again after its first execution
	// was lost ($RESTARTED=1).
	Restarted bool

	// Limits are the -l limits the executor enforces.
	Limits Limits

	// SpoolDir is where the runner may create its per-run directory (the
	// spooled script, the PE hostfile and TMPDIR); "" means os.TempDir(). It
	// must be searchable by the job user.
	SpoolDir string
}

// PEHost is one line of a parallel job's PE hostfile.
type PEHost struct {
	// Host is the host name.
	Host string
	// Slots is the number of slots granted on Host.
	Slots int
	// Queue is the queue instance; "" means "<queue>@<host>".
	Queue string
}

// Limits are the resource limits of a job. Zero means unlimited.
type Limits struct {
	// HRT is h_rt: the job's process group is killed with SIGKILL when its
	// wall clock time exceeds it (failed 37, exit status 137).
	HRT time.Duration
	// SRT is s_rt: the job's process group receives SIGUSR1 when its wall
	// clock time exceeds it.
	SRT time.Duration
	// HVmem is h_vmem in bytes, per slot: the job gets RLIMIT_AS of HVmem
	// times its slots on this host, as Grid Engine's shepherd sets it.
	HVmem int64
	// HCPU is h_cpu: RLIMIT_CPU (whole seconds, rounded up) of the job's
	// processes, times its slots on this host.
	HCPU time.Duration
}

// Result is the accounting record of one run.
type Result struct {
	// ExitStatus is the job's exit status; 128+N when it was killed by
	// signal N (137 for SIGKILL), as qacct's exit_status.
	ExitStatus int
	// Signal is the name of the signal that ended the job ("SIGKILL"), or "".
	Signal string
	// Failed is Grid Engine's failed code (Failed* constants).
	Failed int
	// Start and End are when the job's process started and ended (for a job
	// that did not start, when Run tried).
	Start, End time.Time
	// Wall is End - Start; UserCPU and SysCPU are the CPU times of the job's
	// processes that were waited for.
	Wall, UserCPU, SysCPU time.Duration
	// MaxRSS is the job's maximum resident set size in bytes (ru_maxrss).
	// Linux records the forking process's high-water mark when the child
	// first execs, so it is never below the runner's own resident size at
	// the time (Grid Engine's is never below its shepherd's, 4.9 MB in the
	// reference accounting).
	MaxRSS int64
	// Hostname is the host the job ran on.
	Hostname string
	// PID is the job's process id (also its process group id); 0 if it did
	// not start.
	PID int
	// StdoutPath and StderrPath are the resolved output files (as
	// $SGE_STDOUT_PATH and $SGE_STDERR_PATH), when known.
	StdoutPath, StderrPath string
	// Err is Grid Engine's error reason when the job failed to start, or a
	// note about how it was ended ("killed: h_rt limit of 2s exceeded").
	Err string
}
