package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/executor"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
	"github.com/musubi-fabric/musubi/node/agentapi"
)

// fakeRunner plays jobs: by default a job exits 0 at once; jobs named
// "block*" run until killed; "exit<N>" exit N; "eqw" cannot start.
type fakeRunner struct {
	mu      sync.Mutex
	reqs    []executor.Request
	running int
	maxRun  int
	started chan executor.Request
}

func newFakeRunner() *fakeRunner { return &fakeRunner{started: make(chan executor.Request, 100)} }

func (f *fakeRunner) Run(ctx context.Context, req executor.Request) (executor.Result, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.running++
	f.maxRun = max(f.maxRun, f.running)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
	}()
	f.started <- req
	now := time.Now()
	res := executor.Result{Start: now, End: now, Hostname: "n1", PID: 1}
	var code int
	switch {
	case len(req.JobName) >= 5 && req.JobName[:5] == "block":
		<-ctx.Done()
		res.ExitStatus, res.Signal, res.Failed, res.Err = 137, "SIGKILL", executor.FailedAfterJob, "killed: job deleted"
	case req.JobName == "eqw":
		res.Failed, res.Err = executor.FailedOutputFile, `error: can't open output file "/nonexistent/x": No such file or directory`
		return res, fmt.Errorf("%w: output", executor.ErrJobError)
	default:
		if _, err := fmt.Sscanf(req.JobName, "exit%d", &code); err == nil {
			res.ExitStatus = code
		}
	}
	res.End = time.Now()
	return res, nil
}

func (f *fakeRunner) requests() []executor.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// waitStarted returns the next job the runner starts.
func (f *fakeRunner) waitStarted(t *testing.T) executor.Request {
	t.Helper()
	select {
	case r := <-f.started:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no job started")
		return executor.Request{}
	}
}

type testAgent struct {
	srv    *memstore.Server
	q      *jobqueue.Queue // a queue on its own session, for checks
	c      *agentapi.Client
	runner *fakeRunner
	cancel context.CancelFunc
	done   chan error
}

const testQueueRoot = "/vc/t/jobs"

func startAgent(t *testing.T, slots int) *testAgent {
	t.Helper()
	srv := memstore.New()
	return startAgentOn(t, srv, "n1", slots)
}

func startAgentOn(t *testing.T, srv *memstore.Server, node string, slots int, opts ...func(*Config)) *testAgent {
	t.Helper()
	st := srv.Connect()
	t.Cleanup(func() { _ = st.Close() })
	dir := t.TempDir()
	ready := make(chan struct{})
	a := &testAgent{srv: srv, runner: newFakeRunner(), done: make(chan error, 1)}
	cfg := Config{
		VC: "t", QueueRoot: testQueueRoot, Node: node, Slots: slots, Memory: 8 << 30,
		Spool: filepath.Join(dir, "spool"), Socket: filepath.Join(dir, "agent.sock"),
		SessionTimeout: 10 * time.Second, HostUpdate: time.Hour, Runner: a.runner,
		Logger:  slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnReady: func() { close(ready) },
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() { a.done <- Serve(ctx, st, cfg) }()
	select {
	case <-ready:
	case err := <-a.done:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("agent not ready")
	}
	a.c = agentapi.NewClient(cfg.Socket)
	qs := srv.Connect()
	t.Cleanup(func() { _ = qs.Close() })
	q, err := jobqueue.New(jobqueue.Config{Store: qs, Root: testQueueRoot})
	if err != nil {
		t.Fatal(err)
	}
	a.q = q
	t.Cleanup(func() { a.stop(t) })
	return a
}

// stop shuts the agent down and checks that it returns cleanly.
func (a *testAgent) stop(t *testing.T) {
	t.Helper()
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.cancel = nil
	a.c.Close()
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("agent: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("agent did not stop")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func me(t *testing.T) string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

func job(name string) *sge.JobSpec {
	return &sge.JobSpec{Name: name, ScriptFile: "/bin/true", Binary: true, Cwd: "/tmp",
		Submitter: sge.Submitter{User: "mallory", UID: 4242, Group: "evil", GID: 4242, Host: "h", Cwd: "/tmp"}}
}

func TestSubmitRunsAsTheCallerAndWaitReportsExit(t *testing.T) {
	a := startAgent(t, 1)
	ctx := ctxT(t)
	ids, err := a.c.Submit(ctx, job("exit3"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.c.Wait(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0] != (sge.SyncResult{ExitCode: 3}) {
		t.Fatalf("wait = %+v, want exit code 3", res)
	}
	reqs := a.runner.requests()
	if len(reqs) != 1 {
		t.Fatalf("runner ran %d jobs", len(reqs))
	}
	if reqs[0].User != me(t) || reqs[0].User == "mallory" || reqs[0].UID == 4242 {
		t.Fatalf("job ran as %s (uid %d), want the caller %s", reqs[0].User, reqs[0].UID, me(t))
	}
	acct, err := a.c.Accounting(ctx, fmt.Sprint(ids[0]))
	if err != nil || len(acct) != 1 || len(acct[0].Records) != 1 {
		t.Fatalf("accounting = %+v, %v", acct, err)
	}
	r := acct[0].Records[0]
	if r.ExitStatus != 3 || r.Owner != me(t) || r.Host != "n1" || r.State != jobqueue.StateDone {
		t.Fatalf("record = %+v", r)
	}
	if acct[0].Spec == nil || acct[0].Spec.Name != "exit3" {
		t.Fatalf("accounting spec = %+v", acct[0].Spec)
	}
}

func TestQdelKillsRunningJob(t *testing.T) {
	a := startAgent(t, 1)
	ctx := ctxT(t)
	ids, err := a.c.Submit(ctx, job("block"))
	if err != nil {
		t.Fatal(err)
	}
	a.runner.waitStarted(t)
	jobs, err := a.c.Jobs(ctx, []string{"*"})
	if err != nil || len(jobs.Jobs) != 1 || jobs.Jobs[0].State != jobqueue.StateRunning {
		t.Fatalf("jobs = %+v, %v", jobs, err)
	}
	if jobs.Jobs[0].Spec.Submitter.User != me(t) {
		t.Fatalf("stored owner %q, want %q", jobs.Jobs[0].Spec.Submitter.User, me(t))
	}
	res, err := a.c.Delete(ctx, agentapi.DeleteRequest{Jobs: []sge.JobTaskRef{{Job: fmt.Sprint(ids[0])}, {Job: "999"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Outcome != sge.Registered || res[0].User != me(t) || res[1].Outcome != sge.NotFound || res[1].JobRef != "999" {
		t.Fatalf("delete = %+v", res)
	}
	sync, err := a.c.Wait(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(sync) != 1 || sync[0].Signal != "SIGKILL" {
		t.Fatalf("wait = %+v, want killed by SIGKILL", sync)
	}
	j, err := a.q.Get(ctx, ids[0])
	if err != nil || j.State != jobqueue.StateDeleted {
		t.Fatalf("job = %+v, %v; want deleted", j, err)
	}
}

func TestShutdownGivesRunningJobsBack(t *testing.T) {
	a := startAgent(t, 2)
	ctx := ctxT(t)
	keep := job("block-keep")
	noRerun := job("block-norerun")
	f := false
	noRerun.Rerun = &f
	ids, err := a.c.Submit(ctx, keep, noRerun)
	if err != nil {
		t.Fatal(err)
	}
	a.runner.waitStarted(t)
	a.runner.waitStarted(t)
	a.stop(t)
	j, err := a.q.Get(ctx, ids[0])
	if err != nil || j.State != jobqueue.StateQueued {
		t.Fatalf("job %d = %+v, %v; want back in qw", ids[0], j, err)
	}
	j, err = a.q.Get(ctx, ids[1])
	if err != nil || !j.State.Final() {
		t.Fatalf("-r n job %d = %+v, %v; want finished", ids[1], j, err)
	}
	hosts, err := a.q.Hosts(ctx)
	if err != nil || len(hosts) != 0 {
		t.Fatalf("hosts after shutdown = %+v, %v", hosts, err)
	}
	// Another node picks the given-back job up.
	b := startAgentOn(t, a.srv, "n2", 1)
	r := b.runner.waitStarted(t)
	if r.JobID != ids[0] || !r.Restarted {
		t.Fatalf("n2 started job %d (restarted %v), want %d restarted", r.JobID, r.Restarted, ids[0])
	}
}

func TestSlotsBoundConcurrencyAndPEWaitsForRoom(t *testing.T) {
	a := startAgent(t, 2)
	ctx := ctxT(t)
	pe := job("exit0-pe")
	pe.PE = &sge.PERequest{Name: "smp", Min: 2, Max: 2}
	ids, err := a.c.Submit(ctx, job("block1"), job("block2"), job("block3"))
	if err != nil {
		t.Fatal(err)
	}
	peID, err := a.c.Submit(ctx, pe)
	if err != nil {
		t.Fatal(err)
	}
	first := a.runner.waitStarted(t)
	a.runner.waitStarted(t)
	// Both slots are busy: nothing else may start. Free one.
	if _, err := a.c.Delete(ctx, agentapi.DeleteRequest{Jobs: []sge.JobTaskRef{{Job: fmt.Sprint(first.JobID)}}}); err != nil {
		t.Fatal(err)
	}
	third := a.runner.waitStarted(t)
	if third.JobID == peID[0] {
		t.Fatal("the 2-slot job started with one slot free")
	}
	// Free everything but nothing else: the PE job gets both slots.
	if _, err := a.c.Delete(ctx, agentapi.DeleteRequest{Jobs: []sge.JobTaskRef{{Job: fmt.Sprint(ids[0])}, {Job: fmt.Sprint(ids[1])}, {Job: fmt.Sprint(ids[2])}}}); err != nil {
		t.Fatal(err)
	}
	r := a.runner.waitStarted(t)
	if r.JobID != peID[0] || r.Slots != 2 || r.PEName != "smp" || len(r.PEHosts) != 1 || r.PEHosts[0].Slots != 2 {
		t.Fatalf("PE job request = %+v", r)
	}
	if _, err := a.c.Wait(ctx, peID[0]); err != nil {
		t.Fatal(err)
	}
	a.runner.mu.Lock()
	defer a.runner.mu.Unlock()
	if a.runner.maxRun > 2 {
		t.Fatalf("%d jobs ran at once on 2 slots", a.runner.maxRun)
	}
}

func TestArrayJobAndHoldChain(t *testing.T) {
	a := startAgent(t, 2)
	ctx := ctxT(t)
	arr := job("arr")
	arr.Array = &sge.TaskRange{First: 1, Last: 4, Step: 1}
	dep := job("exit0-dep")
	dep.HoldJobs = []string{"arr"}
	ids, err := a.c.Submit(ctx, arr, dep)
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.c.Wait(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	var tasks []int
	for _, r := range res {
		if r.ExitCode != 0 || r.NeverRan {
			t.Fatalf("task result %+v", r)
		}
		tasks = append(tasks, r.Task)
	}
	slices.Sort(tasks)
	if !slices.Equal(tasks, []int{1, 2, 3, 4}) {
		t.Fatalf("tasks = %v", tasks)
	}
	if _, err := a.c.Wait(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	reqs := a.runner.requests()
	if len(reqs) != 5 || reqs[4].JobID != ids[1] {
		t.Fatalf("the dependent job did not run last: %+v", reqs)
	}
	for _, r := range reqs[:4] {
		if r.TaskFirst != 1 || r.TaskLast != 4 || r.TaskStep != 1 || r.TaskID < 1 {
			t.Fatalf("array task request %+v", r)
		}
	}
}

func TestEqwAndDetails(t *testing.T) {
	a := startAgent(t, 1)
	ctx := ctxT(t)
	ids, err := a.c.Submit(ctx, job("eqw"))
	if err != nil {
		t.Fatal(err)
	}
	a.runner.waitStarted(t)
	var d agentapi.DetailsResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err = a.c.Details(ctx, []string{fmt.Sprint(ids[0]), "12345"})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Jobs) == 1 && d.Jobs[0].State == jobqueue.StateError {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job never in Eqw: %+v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !slices.Equal(d.Unknown, []string{"12345"}) {
		t.Fatalf("unknown = %v", d.Unknown)
	}
	det := agentapi.Detail(d.Jobs[0], nil)
	if len(det.Errors) != 1 || det.SchedulingInfo[0] != "Job is in error state" {
		t.Fatalf("detail = %+v", det)
	}
	if rows := agentapi.JobRows(d.Jobs[0], time.Now()); len(rows) != 1 || rows[0].State != "Eqw" {
		t.Fatalf("rows = %+v", rows)
	}
	if _, err := a.c.Delete(ctx, agentapi.DeleteRequest{Jobs: []sge.JobTaskRef{{Job: fmt.Sprint(ids[0])}}}); err != nil {
		t.Fatal(err)
	}
	res, err := a.c.Wait(ctx, ids[0])
	if err != nil || len(res) != 1 || !res[0].NeverRan {
		t.Fatalf("wait = %+v, %v; want never ran", res, err)
	}
}

func TestOtherUsersCannotChangeJobs(t *testing.T) {
	a := startAgent(t, 1)
	ctx := ctxT(t)
	held := job("held")
	held.UserHold = true
	b := &backend{q: a.q, now: time.Now}
	alice := agentapi.Caller{UID: 1001, GID: 100, User: "alice", Group: "users"}
	bob := agentapi.Caller{UID: 1002, GID: 100, User: "bob", Group: "users"}
	root := agentapi.Caller{UID: 0, GID: 0, User: "root", Group: "root"}
	ids, err := b.Submit(ctx, alice, []*sge.JobSpec{held})
	if err != nil {
		t.Fatal(err)
	}
	ref := []sge.JobTaskRef{{Job: fmt.Sprint(ids[0])}}
	res, err := b.Delete(ctx, bob, agentapi.DeleteRequest{Jobs: ref})
	if err != nil || len(res) != 1 || res[0].Outcome != sge.NotPermitted {
		t.Fatalf("bob's qdel = %+v, %v", res, err)
	}
	out, err := b.Hold(ctx, bob, agentapi.HoldRequest{Release: true, Holds: "u", Jobs: ref})
	if err != nil || out.Exit != 1 || len(out.Stderr) != 1 {
		t.Fatalf("bob's qrls = %+v, %v", out, err)
	}
	name := "stolen"
	out, err = b.Alter(ctx, bob, &sge.QalterRequest{Jobs: ref, Set: []string{"-N"}, Changes: sge.JobSpec{Name: name}})
	if err != nil || out.Exit != 1 {
		t.Fatalf("bob's qalter = %+v, %v", out, err)
	}
	out, err = b.Alter(ctx, alice, &sge.QalterRequest{Jobs: ref, Set: []string{"-N"}, Changes: sge.JobSpec{Name: "renamed"}})
	if err != nil || out.Exit != 0 || !slices.Equal(out.Stdout, []string{fmt.Sprintf("modified job name of job %d", ids[0])}) {
		t.Fatalf("alice's qalter = %+v, %v", out, err)
	}
	res, err = b.Delete(ctx, root, agentapi.DeleteRequest{Users: []string{"alice"}})
	if err != nil || len(res) != 1 || res[0].Outcome != sge.Deleted || res[0].User != "root" {
		t.Fatalf("root's qdel -u alice = %+v, %v", res, err)
	}
	j, err := a.q.Get(ctx, ids[0])
	if err != nil || j.State != jobqueue.StateDeleted || j.Spec.Name != "renamed" {
		t.Fatalf("job = %+v, %v", j, err)
	}
}

func TestHoldReleaseAndQalterHoldList(t *testing.T) {
	a := startAgent(t, 1)
	ctx := ctxT(t)
	ids, err := a.c.Submit(ctx, job("block-first"))
	if err != nil {
		t.Fatal(err)
	}
	a.runner.waitStarted(t)
	later := job("exit0-later")
	later.UserHold = true
	lid, err := a.c.Submit(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	ref := []sge.JobTaskRef{{Job: fmt.Sprint(lid[0])}}
	out, err := a.c.Alter(ctx, &sge.QalterRequest{Jobs: ref, Set: []string{"-hold_jid"}, Changes: sge.JobSpec{HoldJobs: []string{fmt.Sprint(ids[0])}}})
	if err != nil || out.Exit != 0 {
		t.Fatalf("qalter -hold_jid = %+v, %v", out, err)
	}
	want := fmt.Sprintf("modified job id hold list of job %d\n   blocking jobs: %d\n   exited jobs:   NONE", lid[0], ids[0])
	if len(out.Stdout) != 1 || out.Stdout[0] != want {
		t.Fatalf("qalter output %q, want %q", out.Stdout, want)
	}
	out, err = a.c.Hold(ctx, agentapi.HoldRequest{Release: true, Holds: "u", Jobs: ref})
	if err != nil || out.Exit != 0 || out.Stdout[0] != fmt.Sprintf("modified hold of job %d", lid[0]) {
		t.Fatalf("qrls = %+v, %v", out, err)
	}
	jobs, err := a.c.Jobs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows := sge.SortJobs(agentapi.Rows(jobs.Jobs, time.Now()))
	if len(rows) != 2 || rows[0].State != "r" || rows[1].State != "hqw" || rows[1].Holds != "j" || rows[0].Queue != "all.q@n1" {
		t.Fatalf("rows = %+v", rows)
	}
	if _, err := a.c.Delete(ctx, agentapi.DeleteRequest{Jobs: []sge.JobTaskRef{{Job: fmt.Sprint(ids[0])}}}); err != nil {
		t.Fatal(err)
	}
	if res, err := a.c.Wait(ctx, lid[0]); err != nil || res[0].ExitCode != 0 || res[0].NeverRan {
		t.Fatalf("later job: %+v, %v", res, err)
	}
}

func TestHostsAndConfig(t *testing.T) {
	a := startAgent(t, 3)
	ctx := ctxT(t)
	h, err := a.c.Hosts(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Hosts) != 1 || h.Hosts[0].Host != "n1" || h.Hosts[0].Slots != 3 || h.Hosts[0].Arch != "lx-amd64" && h.Hosts[0].Arch == "" {
		t.Fatalf("hosts = %+v", h.Hosts)
	}
	views := agentapi.HostViews(h.Hosts, nil)
	if views[0].MemTotal != 8<<30 || views[0].Queues[0].Total != 3 {
		t.Fatalf("host view = %+v", views[0])
	}

	good := DefaultConfig()
	good.ZK = []string{"127.0.0.1:2181"}
	if err := good.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	bad := good
	bad.ZK, bad.Slots, bad.Node, bad.Spool, bad.VC = []string{"nohost"}, 0, "a/b", "rel", ""
	err = bad.Validate()
	for _, want := range []string{"ZooKeeper server", "slots", "node name", "spool", "vc"} {
		if err == nil || !containsFold(err.Error(), want) {
			t.Errorf("Validate of a bad config: %v; want a complaint about %s", err, want)
		}
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func TestParallelJobSpansNodes(t *testing.T) {
	a := startAgent(t, 2)
	b := startAgentOn(t, a.srv, "n2", 2)
	ctx := ctxT(t)
	mpi := job("exit0-mpi")
	mpi.PE = &sge.PERequest{Name: "mpi", Min: 3, Max: 3}
	ids, err := a.c.Submit(ctx, mpi)
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.c.Wait(ctx, ids[0])
	if err != nil || len(res) != 1 || res[0].ExitCode != 0 || res[0].NeverRan {
		t.Fatalf("wait = %+v, %v", res, err)
	}
	var ran []executor.Request
	for _, x := range []*testAgent{a, b} {
		ran = append(ran, x.runner.requests()...)
	}
	if len(ran) != 1 {
		t.Fatalf("the job ran %d times, want once on its master", len(ran))
	}
	r := ran[0]
	total, hosts := 0, map[string]bool{}
	for _, h := range r.PEHosts {
		total += h.Slots
		hosts[h.Host] = true
	}
	if r.Slots != 3 || total != 3 || len(hosts) != 2 || r.PEName != "mpi" {
		t.Fatalf("request: slots %d, PE hosts %+v", r.Slots, r.PEHosts)
	}
	// The slot shares are given back: both nodes can run 2-slot jobs again.
	smp := job("exit0-smp")
	smp.PE = &sge.PERequest{Name: "smp", Min: 2, Max: 2}
	ids, err = a.c.Submit(ctx, smp, smp)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := a.c.Wait(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOnlyRootSetsOperatorAndSystemHolds(t *testing.T) {
	a := startAgent(t, 1)
	ctx := ctxT(t)
	b := &backend{q: a.q, now: time.Now}
	alice := agentapi.Caller{UID: 1001, GID: 100, User: "alice", Group: "users"}
	root := agentapi.Caller{User: "root", Group: "root"}
	held := job("held")
	held.UserHold = true
	ids, err := b.Submit(ctx, alice, []*sge.JobSpec{held})
	if err != nil {
		t.Fatal(err)
	}
	ref := []sge.JobTaskRef{{Job: fmt.Sprint(ids[0])}}
	out, err := b.Hold(ctx, alice, agentapi.HoldRequest{Holds: "s", Jobs: ref})
	if err != nil || out.Exit != 1 {
		t.Fatalf("alice's qhold -h s = %+v, %v", out, err)
	}
	out, err = b.Hold(ctx, root, agentapi.HoldRequest{Holds: "o", Jobs: ref})
	if err != nil || out.Exit != 0 {
		t.Fatalf("root's qhold -h o = %+v, %v", out, err)
	}
	out, err = b.Hold(ctx, alice, agentapi.HoldRequest{Release: true, Holds: "o", Jobs: ref})
	if err != nil || out.Exit != 1 {
		t.Fatalf("alice's qrls -h o = %+v, %v", out, err)
	}
	j, err := a.q.Get(ctx, ids[0])
	if err != nil || j.Holds != "ou" {
		t.Fatalf("holds = %q, %v; want ou", j.Holds, err)
	}
}

// TestStartCleansSpool: an agent starting on a spool directory that a
// killed agent left jobs' directories in removes them (killing what those
// jobs left running: see executor.KillLeftovers) before it runs anything,
// and leaves other files alone.
func TestStartCleansSpool(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "spool")
	left := filepath.Join(spool, "17.1.12345")
	other := filepath.Join(spool, "notes")
	for _, d := range []string{filepath.Join(left, "17.1.all.q"), other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a := startAgentOn(t, memstore.New(), "n1", 1, func(c *Config) { c.Spool = spool })
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("a dead agent's job directory stays: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another file of the spool went: %v", err)
	}
	a.stop(t)
}
