//go:build linux

package executor

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Keys of the reference environments (real Grid Engine 8.1.9 jobs, in
// testdata/sge-reference) that musubi does not set, and why.
var notApplicable = map[string]string{
	"SGE_QMASTER_PORT": "there is no qmaster: musubi's commands find the queue themselves",
	"SGE_EXECD_PORT":   "there is no execd port",
	"SHLVL":            "set by the shell, or inherited from sge_execd's own environment",
	"_":                "set by the shell, or inherited from sge_execd's own environment",
}

// Keys musubi sets that the reference job environments lack, and why.
var extraKeys = map[string]string{
	"TMPDIR": "Grid Engine sets it for every job but root's (8.1.9 drops it for root; nobody's jobs have it); " +
		"musubi sets it for all, as scripts rely on it",
	"ENVIRONMENT": "Grid Engine writes ENVIRONMENT=BATCH into the job's environment file " +
		"(execd_active_job_environment.txt) and musubi passes it on",
}

func referenceEnv(t *testing.T, name string) map[string]string {
	t.Helper()
	return readEnvFile(t, filepath.Join("testdata", "sge-reference", name))
}

// expectedKeys is the reference's key set, adjusted as documented above.
func expectedKeys(ref map[string]string) []string {
	var keys []string
	for k := range ref {
		if _, na := notApplicable[k]; !na {
			keys = append(keys, k)
		}
	}
	for k := range extraKeys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// jobKeys is the job environment's key set without the shell's own
// variables.
func jobKeys(env map[string]string) []string {
	var keys []string
	for k := range env {
		if _, na := notApplicable[k]; !na {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func diffKeys(t *testing.T, got, want []string) {
	t.Helper()
	for _, k := range want {
		if !slices.Contains(got, k) {
			t.Errorf("missing %s", k)
		}
	}
	for _, k := range got {
		if !slices.Contains(want, k) {
			t.Errorf("unexpected %s", k)
		}
	}
}

// TestEnvironmentKeysMatchReference compares the raw environment of a
// `-b y -shell no /usr/bin/env` job with Grid Engine's
// (env_raw_shell_no.txt), key by key.
func TestEnvironmentKeysMatchReference(t *testing.T) {
	t.Setenv("LANG", "C.UTF-8") // Grid Engine's jobs inherit execd's LANG
	e := newTestEnv(t)
	r := newTestRunner(t)
	req := e.request(t, "")
	req.JobName = "env_raw"
	req.Binary, req.NoShell, req.Command = true, true, "/usr/bin/env"
	req.Stdout, req.Join = "env_raw.txt", true
	res := mustRun(t, r, req)
	if res.ExitStatus != 0 {
		t.Fatalf("exit status %d", res.ExitStatus)
	}
	env := readEnvFile(t, filepath.Join(e.work, "env_raw.txt"))
	ref := referenceEnv(t, "env_raw_shell_no.txt")
	diffKeys(t, jobKeys(env), expectedKeys(ref))
	execdEnv := referenceEnv(t, "execd_active_job_environment.txt")
	for k := range extraKeys {
		if _, ok := execdEnv[k]; !ok {
			t.Errorf("extra key %s is not in Grid Engine's job environment file either", k)
		}
	}

	// Values that must be the same as Grid Engine's for the same job.
	for _, k := range []string{"NHOSTS", "NQUEUES", "NSLOTS", "QUEUE", "RESTARTED", "SGE_ACCOUNT", "SGE_ARCH",
		"ARC", "SGE_CELL", "SGE_STDIN_PATH", "SGE_TASK_ID", "SGE_TASK_FIRST", "SGE_TASK_LAST",
		"SGE_TASK_STEPSIZE", "SHELL", "PATH", "TERM", "LANG", "SGE_O_PATH", "SGE_O_SHELL"} {
		if env[k] != ref[k] {
			t.Errorf("%s = %q, Grid Engine has %q", k, env[k], ref[k])
		}
	}
	checks := map[string]string{
		"JOB_ID": "42", "JOB_NAME": "env_raw", "REQUEST": "env_raw", "REQNAME": "env_raw",
		"JOB_SCRIPT": "/usr/bin/env", "HOSTNAME": testHost, "HOME": e.home, "PWD": e.work,
		"SGE_CWD_PATH": e.work, "SGE_O_WORKDIR": e.work, "SGE_O_HOME": e.home, "SGE_O_HOST": "submithost",
		"SGE_STDOUT_PATH": filepath.Join(e.work, "env_raw.txt"), "SGE_STDERR_PATH": filepath.Join(e.work, "env_raw.txt"),
		"SGE_ROOT": "/var/lib/musubi-sge", "ENVIRONMENT": "BATCH", "USER": req.User, "LOGNAME": req.User,
	}
	for k, v := range checks {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if env["TMP"] != env["TMPDIR"] || !strings.HasSuffix(env["TMPDIR"], "/42.1.all.q") {
		t.Errorf("TMP %q TMPDIR %q, want <spool>/42.1.all.q", env["TMP"], env["TMPDIR"])
	}
	if !strings.HasPrefix(env["TMPDIR"], env["SGE_JOB_SPOOL_DIR"]+"/") || !strings.HasPrefix(env["SGE_JOB_SPOOL_DIR"], e.spool+"/") {
		t.Errorf("SGE_JOB_SPOOL_DIR %q TMPDIR %q not in the spool %q", env["SGE_JOB_SPOOL_DIR"], env["TMPDIR"], e.spool)
	}
}

// TestEnvironmentPEMatchesReference compares a -pe smp 2 script job's
// environment (run by /bin/sh) with env_pe_smp2.txt, and its hostfile with
// env_pe_hostfile.txt.
func TestEnvironmentPEMatchesReference(t *testing.T) {
	t.Setenv("LANG", "C.UTF-8")
	e := newTestEnv(t)
	r := newTestRunner(t)
	req := e.request(t, "#!/bin/bash\nenv > env_pe.txt\ncat \"$PE_HOSTFILE\" > hostfile.txt\necho NSLOTS=$NSLOTS >> hostfile.txt\n")
	req.JobName = "env_pe"
	req.PEName, req.Slots = "smp", 2
	mustRun(t, r, req)
	env := readEnvFile(t, filepath.Join(e.work, "env_pe.txt"))
	ref := referenceEnv(t, "env_pe_smp2.txt")
	diffKeys(t, jobKeys(env), expectedKeys(ref))
	for _, k := range []string{"PE", "NSLOTS", "NHOSTS", "NQUEUES", "SGE_RSH_COMMAND", "QUEUE"} {
		if env[k] != ref[k] {
			t.Errorf("%s = %q, Grid Engine has %q", k, env[k], ref[k])
		}
	}
	if want := filepath.Join(env["SGE_JOB_SPOOL_DIR"], "pe_hostfile"); env["PE_HOSTFILE"] != want {
		t.Errorf("PE_HOSTFILE = %q, want %q", env["PE_HOSTFILE"], want)
	}
	refHostfile := strings.ReplaceAll(readFile(t, filepath.Join("testdata", "sge-reference", "env_pe_hostfile.txt")), "vm", testHost)
	if got := readFile(t, filepath.Join(e.work, "hostfile.txt")); got != refHostfile {
		t.Errorf("hostfile %q, Grid Engine's %q", got, refHostfile)
	}
	// The #! line is ignored: /bin/sh (dash) ran the script.
	if env["SHELL"] != "/bin/sh" {
		t.Errorf("SHELL = %q", env["SHELL"])
	}
}

// TestEnvironmentArrayTaskMatchesReference runs task 4 of -t 1-10:3 like
// env_array_task4.txt.
func TestEnvironmentArrayTaskMatchesReference(t *testing.T) {
	t.Setenv("LANG", "C.UTF-8")
	e := newTestEnv(t)
	r := newTestRunner(t)
	req := e.request(t, "env\n")
	req.JobName = "env_array"
	req.TaskID, req.TaskFirst, req.TaskLast, req.TaskStep = 4, 1, 10, 3
	req.Stdout, req.Join = "$JOB_NAME.$TASK_ID.txt", true
	res := mustRun(t, r, req)
	path := filepath.Join(e.work, "env_array.4.txt")
	if res.StdoutPath != path || res.StderrPath != path {
		t.Errorf("paths %q %q, want %q", res.StdoutPath, res.StderrPath, path)
	}
	env := readEnvFile(t, path)
	ref := referenceEnv(t, "env_array_task4.txt")
	diffKeys(t, jobKeys(env), expectedKeys(ref))
	for _, k := range []string{"SGE_TASK_ID", "SGE_TASK_FIRST", "SGE_TASK_LAST", "SGE_TASK_STEPSIZE"} {
		if env[k] != ref[k] {
			t.Errorf("%s = %q, Grid Engine has %q", k, env[k], ref[k])
		}
	}
	if !strings.HasSuffix(env["TMPDIR"], "/42.4.all.q") {
		t.Errorf("TMPDIR %q", env["TMPDIR"])
	}
}

// TestEnvironmentVariablesLikeReference: -v FOO=x,BAR gives FOO=x and BAR=
// (env_v.txt); -V's TERM wins over the empty default (env_V.txt); Grid
// Engine's own variables win over -v/-V.
func TestEnvironmentVariablesLikeReference(t *testing.T) {
	e := newTestEnv(t)
	r := newTestRunner(t)
	req := e.request(t, "env > env_v.txt\n")
	req.Env = map[string]string{"FOO": "x", "BAR": "", "TERM": "xterm", "SHELL": "/bin/bash", "JOB_ID": "1",
		"PATH": "/custom/bin:/usr/bin:/bin", "HOME": "/elsewhere", "USER": "mallory"}
	mustRun(t, r, req)
	env := readEnvFile(t, filepath.Join(e.work, "env_v.txt"))
	refv := referenceEnv(t, "env_v.txt")
	refV := referenceEnv(t, "env_V.txt")
	if env["FOO"] != refv["FOO"] || env["BAR"] != refv["BAR"] {
		t.Errorf("FOO %q BAR %q, Grid Engine %q %q", env["FOO"], env["BAR"], refv["FOO"], refv["BAR"])
	}
	if _, ok := env["BAR"]; !ok {
		t.Errorf("BAR unset")
	}
	if env["TERM"] != refV["TERM"] {
		t.Errorf("TERM %q, Grid Engine with -V %q", env["TERM"], refV["TERM"])
	}
	want := map[string]string{"SHELL": "/bin/sh", "JOB_ID": "42", "PATH": "/custom/bin:/usr/bin:/bin",
		"HOME": e.home, "USER": req.User}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
}
