package executor

import (
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// DefaultPath is the job's PATH unless -v/-V set one: the PATH Grid Engine
// 8.1.9 jobs see on Debian (/usr/local/bin:/usr/bin:/bin).
const DefaultPath = "/usr/local/bin:/usr/bin:/bin"

// DefaultInheritEnv names the variables a job inherits from the runner's own
// environment when Runner.InheritEnv is nil. Grid Engine's execd passes its
// whole environment (inherit_env); only the locale and time zone are meant
// for jobs, and anything else (credentials!) must not leak into them. A
// trailing "*" matches a prefix.
// MUSUBI_SITE and MUSUBI_VC (set for a provisioned node's agent) tell a
// job which site and virtual cluster run it: musubi's only additions to
// Grid Engine's environment.
var DefaultInheritEnv = []string{"LANG", "LANGUAGE", "LC_*", "TZ", "MUSUBI_SITE", "MUSUBI_VC"}

// envInput is everything the job environment is computed from.
type envInput struct {
	req        *Request
	jobName    string
	hostname   string
	queue      string
	home       string
	shell      string
	workdir    string
	jobScript  string
	spoolDir   string
	tmpDir     string
	peHostfile string // "" without a PE
	stdout     string
	stderr     string
	slots      int
	nhosts     int
	nqueues    int
}

// environment builds the job's environment the way Grid Engine's execd and
// shepherd do, in their order:
//
//  1. variables inherited from the runner (InheritEnv), TERM empty, and
//     PATH=DefaultPath;
//  2. the job's -v/-V variables, which may override those;
//  3. Grid Engine's own variables, which override everything: HOME USER
//     LOGNAME SHELL PWD HOSTNAME JOB_ID JOB_NAME JOB_SCRIPT REQNAME REQUEST
//     QUEUE NSLOTS NHOSTS NQUEUES RESTARTED ENVIRONMENT=BATCH ARC TMPDIR TMP
//     SGE_TASK_ID/FIRST/LAST/STEPSIZE ("undefined" outside arrays) SGE_CELL
//     SGE_ROOT SGE_ARCH SGE_ACCOUNT SGE_BINARY_PATH SGE_CWD_PATH
//     SGE_JOB_SPOOL_DIR SGE_STDIN_PATH SGE_STDOUT_PATH SGE_STDERR_PATH
//     SGE_O_*; with a PE also PE PE_HOSTFILE SGE_RSH_COMMAND.
//
// The result is sorted by name.
func (r *Runner) environment(in *envInput) []string {
	req := in.req
	env := make(map[string]string, 64)

	for _, kv := range os.Environ() {
		k, v, ok := strings.Cut(kv, "=")
		if ok && inherited(k, r.inheritEnv()) {
			env[k] = v
		}
	}
	env["TERM"] = ""
	env["PATH"] = r.defaultPath()

	for k, v := range req.Env {
		if validEnvName(k) && !strings.ContainsRune(v, 0) {
			env[k] = v
		}
	}

	set := func(k, v string) { env[k] = v }
	setInt := func(k string, v int) { env[k] = strconv.Itoa(v) }

	set("HOME", in.home)
	set("USER", req.User)
	set("LOGNAME", req.User)
	set("SHELL", in.shell)
	set("PWD", in.workdir)
	set("HOSTNAME", in.hostname)
	set("QUEUE", in.queue)
	set("JOB_ID", strconv.FormatInt(req.JobID, 10))
	set("JOB_NAME", in.jobName)
	set("JOB_SCRIPT", in.jobScript)
	set("REQNAME", in.jobName)
	set("REQUEST", in.jobName)
	if req.TaskID != 0 {
		step := req.TaskStep
		if step <= 0 {
			step = 1
		}
		setInt("SGE_TASK_ID", req.TaskID)
		setInt("SGE_TASK_FIRST", req.TaskFirst)
		setInt("SGE_TASK_LAST", req.TaskLast)
		setInt("SGE_TASK_STEPSIZE", step)
	} else {
		for _, k := range []string{"SGE_TASK_ID", "SGE_TASK_FIRST", "SGE_TASK_LAST", "SGE_TASK_STEPSIZE"} {
			set(k, "undefined")
		}
	}
	set("ENVIRONMENT", "BATCH")
	a := arch()
	set("ARC", a)
	set("SGE_ARCH", a)
	set("SGE_CELL", r.cell())
	if r.SGERoot != "" {
		set("SGE_ROOT", r.SGERoot)
	}
	if bp := r.binaryPath(); bp != "" {
		set("SGE_BINARY_PATH", bp)
	}
	setInt("NQUEUES", in.nqueues)
	setInt("NSLOTS", in.slots)
	setInt("NHOSTS", in.nhosts)
	restarted := 0
	if req.Restarted {
		restarted = 1
	}
	setInt("RESTARTED", restarted)
	set("TMPDIR", in.tmpDir)
	set("TMP", in.tmpDir)
	account := req.Account
	if account == "" {
		account = "sge"
	}
	set("SGE_ACCOUNT", account)
	if in.peHostfile != "" {
		set("PE", req.PEName)
		set("PE_HOSTFILE", in.peHostfile)
		set("SGE_RSH_COMMAND", "builtin")
	}
	set("SGE_JOB_SPOOL_DIR", in.spoolDir)
	set("SGE_CWD_PATH", in.workdir)
	set("SGE_STDIN_PATH", "/dev/null")
	set("SGE_STDOUT_PATH", in.stdout)
	set("SGE_STDERR_PATH", in.stderr)

	set("SGE_O_HOST", req.SubmitHost)
	set("SGE_O_WORKDIR", req.SubmitCwd)
	for k, v := range map[string]string{
		"SGE_O_HOME":    req.SubmitHome,
		"SGE_O_PATH":    req.SubmitPath,
		"SGE_O_SHELL":   req.SubmitShell,
		"SGE_O_LOGNAME": req.SubmitLogname,
		"SGE_O_MAIL":    req.SubmitMail,
		"SGE_O_TZ":      req.SubmitTZ,
	} {
		if v != "" {
			set(k, v)
		}
	}

	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// inherited reports whether name matches one of the patterns (exact names, or
// prefixes ending in "*").
func inherited(name string, patterns []string) bool {
	for _, p := range patterns {
		if pre, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, pre) {
				return true
			}
		} else if name == p {
			return true
		}
	}
	return false
}

// validEnvName reports whether name can be an environment variable name.
func validEnvName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "=\x00")
}

// arch is Grid Engine's architecture string ($ARC, $SGE_ARCH).
func arch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "lx-amd64"
	case "386":
		return "lx-x86"
	default:
		return "lx-" + runtime.GOARCH
	}
}
