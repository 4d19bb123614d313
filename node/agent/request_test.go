package agent

import (
	"reflect"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/executor"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// grant is a fake claim.
type grant struct {
	id        int64
	task      int
	spec      *sge.JobSpec
	slots     int
	hosts     []jobqueue.PEHost
	restarted bool
}

func (g grant) JobID() int64             { return g.id }
func (g grant) Task() int                { return g.task }
func (g grant) Spec() *sge.JobSpec       { return g.spec }
func (g grant) Slots() int               { return g.slots }
func (g grant) Hosts() []jobqueue.PEHost { return g.hosts }
func (g grant) Restarted() bool          { return g.restarted }

type fakeAccounts map[string]Account

func (f fakeAccounts) Lookup(name string, uid uint32) (Account, bool) {
	a, ok := f[name]
	return a, ok
}

func TestBuildRequest(t *testing.T) {
	alice := sge.Submitter{
		User: "alice", UID: 1001, Group: "users", GID: 100, Home: "/home/alice", Host: "login1",
		Cwd: "/home/alice/run", Path: "/usr/bin:/bin", Shell: "/bin/bash", LogName: "alice", TZ: "UTC",
	}
	accts := fakeAccounts{"alice": {Home: "/srv/home/alice", Groups: []uint32{100, 27}}}
	rerun := false
	cases := []struct {
		name  string
		g     grant
		accts Accounts
		want  executor.Request
	}{{
		name: "script job with -cwd -j y -o pseudo-variables, -v, -S, limits",
		g: grant{id: 42, slots: 1, restarted: true, spec: &sge.JobSpec{
			Name: "sim", ScriptFile: "sim.sh", Script: []byte("#!/bin/sh\necho hi\n"), Args: []string{"a", "b c"},
			Cwd: "/home/alice/run", Join: true,
			Stdout: []sge.PathSpec{{Path: "logs/$JOB_NAME.$JOB_ID.$TASK_ID"}},
			Stderr: []sge.PathSpec{{Host: "login1", Path: "/tmp/e"}, {Path: "/tmp/e2"}},
			Shell:  []sge.PathSpec{{Host: "other", Path: "/bin/zsh"}, {Path: "/bin/bash"}},
			Env:    []sge.EnvVar{{Name: "TERM", Unset: true}, {Name: "FOO", Value: "bar"}},
			Resources: sge.Resources{HardRuntime: time.Hour, SoftRuntime: time.Minute, HardVmem: 1 << 30,
				HardCPU: 2 * time.Hour},
			Account: "proj", Rerun: &rerun, Submitter: alice,
		}},
		accts: accts,
		want: executor.Request{
			JobID: 42, JobName: "sim", Script: []byte("#!/bin/sh\necho hi\n"), Args: []string{"a", "b c"},
			Shell: "/bin/bash", User: "alice", UID: 1001, GID: 100, Groups: []uint32{100, 27}, Home: "/srv/home/alice",
			SubmitHost: "login1", SubmitCwd: "/home/alice/run", SubmitHome: "/home/alice", SubmitPath: "/usr/bin:/bin",
			SubmitShell: "/bin/bash", SubmitLogname: "alice", SubmitTZ: "UTC", Workdir: "/home/alice/run",
			Stdout: "logs/$JOB_NAME.$JOB_ID.$TASK_ID", Stderr: "login1:/tmp/e,/tmp/e2", Join: true,
			Env: map[string]string{"TERM": "", "FOO": "bar"}, Slots: 1, Account: "proj", Restarted: true,
			Limits:   executor.Limits{HRT: time.Hour, SRT: time.Minute, HVmem: 1 << 30, HCPU: 2 * time.Hour},
			SpoolDir: "/spool",
		},
	}, {
		name: "array task of a binary job, relative -wd, user unknown on this host",
		g: grant{id: 7, task: 5, slots: 1, spec: &sge.JobSpec{
			Name: "true", ScriptFile: "/bin/true", Binary: true, NoShell: true, Cwd: "sub",
			Array: &sge.TaskRange{First: 1, Last: 9, Step: 2}, Submitter: alice,
		}},
		accts: fakeAccounts{},
		want: executor.Request{
			JobID: 7, TaskID: 5, TaskFirst: 1, TaskLast: 9, TaskStep: 2, JobName: "true", Binary: true, NoShell: true,
			Command: "/bin/true", User: "alice", UID: 1001, GID: 100, Groups: []uint32{100},
			SubmitHost: "login1", SubmitCwd: "/home/alice/run", SubmitHome: "/home/alice", SubmitPath: "/usr/bin:/bin",
			SubmitShell: "/bin/bash", SubmitLogname: "alice", SubmitTZ: "UTC", Workdir: "/home/alice/run/sub",
			Slots: 1, SpoolDir: "/spool",
		},
	}, {
		name: "-pe smp 2 on this host",
		g: grant{id: 9, slots: 2, hosts: []jobqueue.PEHost{{Executor: "n1", Host: "n1", Slots: 2}}, spec: &sge.JobSpec{
			Name: "par", ScriptFile: "par.sh", Script: []byte("echo"), PE: &sge.PERequest{Name: "smp", Min: 2, Max: 2},
			Submitter: alice,
		}},
		accts: accts,
		want: executor.Request{
			JobID: 9, JobName: "par", Script: []byte("echo"), User: "alice", UID: 1001, GID: 100,
			Groups: []uint32{100, 27}, Home: "/srv/home/alice",
			SubmitHost: "login1", SubmitCwd: "/home/alice/run", SubmitHome: "/home/alice", SubmitPath: "/usr/bin:/bin",
			SubmitShell: "/bin/bash", SubmitLogname: "alice", SubmitTZ: "UTC",
			Slots: 2, PEName: "smp", PEHosts: []executor.PEHost{{Host: "n1", Slots: 2}}, SpoolDir: "/spool",
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := BuildRequest(tc.g, "n1", "/spool", tc.accts)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("BuildRequest:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestResultOf(t *testing.T) {
	start := time.Unix(1000, 0)
	r := executor.Result{ExitStatus: 3, Start: start, End: start.Add(time.Second), Wall: time.Second,
		UserCPU: time.Millisecond, SysCPU: 2 * time.Millisecond, MaxRSS: 4096}
	got := resultOf(r, false)
	want := jobqueue.Result{ExitStatus: 3, Start: start, End: start.Add(time.Second), WallClock: time.Second,
		UserCPU: time.Millisecond, SystemCPU: 2 * time.Millisecond, MaxRSS: 4096}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("exit 3: got %+v want %+v", got, want)
	}
	if got := resultOf(executor.Result{ExitStatus: 99}, false); !got.Reschedule || got.Error {
		t.Errorf("exit 99 should reschedule: %+v", got)
	}
	if got := resultOf(executor.Result{ExitStatus: 100}, false); !got.Error || got.Reschedule {
		t.Errorf("exit 100 should put the job in error: %+v", got)
	}
	if got := resultOf(executor.Result{ExitStatus: 99}, true); got.Reschedule {
		t.Errorf("a deleted job is not rescheduled: %+v", got)
	}
	killed := executor.Result{ExitStatus: 137, Signal: "SIGKILL", Failed: executor.FailedLimit, Err: "killed: h_rt"}
	if got := resultOf(killed, false); got.Failed != executor.FailedLimit || got.Signal != "SIGKILL" || got.FailedReason != "killed: h_rt" {
		t.Errorf("h_rt kill: %+v", got)
	}
}
