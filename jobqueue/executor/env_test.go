package executor

import (
	"slices"
	"strings"
	"testing"
)

func envMap(list []string) map[string]string {
	m := map[string]string{}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestEnvironmentPrecedenceAndInheritance(t *testing.T) {
	t.Setenv("LANG", "C.UTF-8")
	t.Setenv("LC_TIME", "C")
	t.Setenv("MUSUBI_SECRET_TOKEN", "do-not-leak")
	r := &Runner{Hostname: "vm", BinaryPath: "/usr/bin"}
	req := &Request{
		JobID: 88, User: "alice", SubmitHost: "sub", SubmitCwd: "/w",
		Env: map[string]string{
			"FOO": "x", "BAR": "", // -v FOO=x,BAR
			"TERM": "xterm", "PATH": "/opt/bin:/usr/bin", // -V may set these
			"SHELL": "/bin/bash", "JOB_ID": "1", "HOME": "/elsewhere", "SGE_O_HOST": "forged", // but not these
			"BAD=NAME": "x", "": "y",
		},
	}
	in := &envInput{req: req, jobName: "env_v", hostname: "vm", queue: "all.q", home: "/home/alice",
		shell: "/bin/sh", workdir: "/w", jobScript: "/s/job_script", spoolDir: "/s", tmpDir: "/s/88.1.all.q",
		stdout: "/w/o", stderr: "/w/e", slots: 1, nhosts: 1, nqueues: 1}
	list := r.environment(in)
	if !slices.IsSorted(list) {
		t.Errorf("environment not sorted")
	}
	env := envMap(list)
	want := map[string]string{
		"FOO": "x", "BAR": "", "TERM": "xterm", "PATH": "/opt/bin:/usr/bin",
		"SHELL": "/bin/sh", "JOB_ID": "88", "HOME": "/home/alice", "SGE_O_HOST": "sub",
		"LANG": "C.UTF-8", "LC_TIME": "C", "USER": "alice", "LOGNAME": "alice",
		"SGE_TASK_ID": "undefined", "SGE_TASK_STEPSIZE": "undefined", "ENVIRONMENT": "BATCH",
		"TMPDIR": "/s/88.1.all.q", "TMP": "/s/88.1.all.q", "SGE_ACCOUNT": "sge", "RESTARTED": "0",
		"SGE_BINARY_PATH": "/usr/bin", "SGE_CELL": "default", "REQUEST": "env_v", "REQNAME": "env_v",
	}
	for k, v := range want {
		if got, ok := env[k]; !ok || got != v {
			t.Errorf("%s = %q (set %v), want %q", k, got, ok, v)
		}
	}
	for _, k := range []string{"MUSUBI_SECRET_TOKEN", "BAD=NAME", "", "SGE_ROOT", "PE", "PE_HOSTFILE", "SGE_O_LOGNAME"} {
		if _, ok := env[k]; ok {
			t.Errorf("%q must not be set", k)
		}
	}

	// Without -v/-V: default PATH and an empty TERM, as in the reference.
	req.Env = nil
	env = envMap(r.environment(in))
	if env["PATH"] != DefaultPath || env["TERM"] != "" {
		t.Errorf("PATH %q TERM %q", env["PATH"], env["TERM"])
	}
	// InheritEnv empty: nothing inherited.
	r.InheritEnv = []string{}
	if _, ok := envMap(r.environment(in))["LANG"]; ok {
		t.Errorf("LANG inherited with InheritEnv empty")
	}
}
