//go:build bench

// Package jobs is the `jobs` benchmark of make bench (scripts/bench.sh
// jobs): musubi's batch system against a real Grid Engine 8.1.9 cell with
// the same slot count, measured in the same run on the same machine.
//
// Knobs (environment):
//
//	MUSUBI_BENCH_SGE_JOBS=1000    trivial jobs for (a), Grid Engine (0 skips it)
//	MUSUBI_BENCH_JOBS             trivial jobs for (a), musubi (default: the same)
//	MUSUBI_BENCH_SYNC_SAMPLES=20  qsub -sync y samples for (b), both
//	MUSUBI_BENCH_SUBMITS=200      sequential qsub processes for (c), both
//	MUSUBI_BENCH_BATCH_JOBS=10000 jobs submitted through the batch API for (c)
//	MUSUBI_BENCH_SUBMITTERS=4     concurrent qsub loops for the second run of (a) (<= 1 skips it)
//	MUSUBI_BENCH_SGE=off          skip the Grid Engine baseline altogether
//	MUSUBI_BENCH_BIN=path         run this musubi binary instead of building one
package jobs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/benchrec"
	"github.com/musubi-fabric/musubi/internal/zktest"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
	"github.com/musubi-fabric/musubi/node/agentapi"
)

// slots is the slot count of both systems: Grid Engine's all.q on this
// host, and one musubi agent with as many slots (the same shape: one
// execution host).
const slots = 2

func knob(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil && n >= 0 {
			return n
		}
	}
	return def
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

func TestBenchJobs(t *testing.T) {
	rec := benchrec.New(os.Stdout)
	record := func(f benchrec.Figure) {
		f.Bench = "jobs"
		if err := rec.Record(f); err != nil {
			t.Error(err)
		}
	}
	sgeJobs := knob("MUSUBI_BENCH_SGE_JOBS", 1000)
	nJobs := knob("MUSUBI_BENCH_JOBS", sgeJobs)
	if nJobs == 0 {
		nJobs = 1000
	}
	nSync := knob("MUSUBI_BENCH_SYNC_SAMPLES", 20)
	nSubmits := knob("MUSUBI_BENCH_SUBMITS", 200)
	nBatch := knob("MUSUBI_BENCH_BATCH_JOBS", 10000)
	nPar := knob("MUSUBI_BENCH_SUBMITTERS", 4)

	// --- the Grid Engine baseline, first, alone on the machine ---
	ge := gridEngine(t, sgeJobs, nSync, nSubmits)
	for _, name := range sortedKeys(ge) {
		unit := "jobs/s"
		switch {
		case strings.HasSuffix(name, "_ms"):
			unit = "ms"
		case strings.HasSuffix(name, "_seconds"):
			unit = "s"
		case name == "sge_slots":
			unit = "slots"
		}
		record(benchrec.Figure{Figure: name, Value: ge[name], Unit: unit})
	}
	if v, ok := ge["sge_slots"]; ok && int(v) != slots {
		t.Errorf("Grid Engine ran with %v slots, musubi with %d", v, slots)
	}
	withBase := func(f benchrec.Figure, base string) benchrec.Figure {
		if v, ok := ge[base]; ok && v > 0 {
			return f.WithBaseline(base, v)
		}
		return f
	}

	// --- musubi on a fresh 3-server ensemble ---
	m := startMusubi(t)
	fmt.Printf("musubi: 1 agent with %d slots on a 3-server ZooKeeper ensemble; jobs run as %s; load %s\n", slots, m.userName, load())

	if err := m.warmUp(300); err != nil {
		t.Fatal(err)
	}

	// (a) N trivial jobs as CLI processes, first submit -> last completion:
	// sequential qsub processes as in the Grid Engine baseline, then from
	// several concurrent submitters.
	cpu0 := m.cpu()
	total, submitting, cpu1, err := m.trivialJobs(nJobs, 1)
	if err != nil {
		t.Fatal(err)
	}
	rate := float64(nJobs) / total.Seconds()
	fmt.Printf("musubi: (a) %d trivial jobs, sequential qsub: %.2f s from first submit to last completion (submissions alone %.2f s); %s; load %s\n",
		nJobs, total.Seconds(), submitting.Seconds(), cpu1.perJob(cpu0, nJobs), load())
	record(withBase(benchrec.Figure{Figure: "musubi_trivial_jobs_seconds", Value: total.Seconds(), Unit: "s"}, "sge_trivial_jobs_seconds"))
	record(withBase(benchrec.Figure{Figure: "musubi_trivial_jobs_per_second", Value: rate, Unit: "jobs/s", Goal: ">= 50 (ratio to Grid Engine)"}, "sge_trivial_jobs_per_second"))
	if nPar > 1 {
		cpu0 := m.cpu()
		total, submitting, cpu1, err := m.trivialJobs(nJobs, nPar)
		if err != nil {
			t.Fatal(err)
		}
		rate := float64(nJobs) / total.Seconds()
		fmt.Printf("musubi: (a) %d trivial jobs, %d concurrent qsub loops: %.2f s from first submit to last completion (submissions alone %.2f s); %s; load %s\n",
			nJobs, nPar, total.Seconds(), submitting.Seconds(), cpu1.perJob(cpu0, nJobs), load())
		record(withBase(benchrec.Figure{Figure: fmt.Sprintf("musubi_trivial_jobs_per_second_%dsubmitters", nPar), Value: rate, Unit: "jobs/s"}, "sge_trivial_jobs_per_second"))
	}

	// (b) qsub -sync y latency.
	if nSync > 0 {
		lat, err := m.syncLatency(nSync)
		if err != nil {
			t.Fatal(err)
		}
		p50, p99 := benchrec.Percentile(lat, 50), benchrec.Percentile(lat, 99)
		fmt.Printf("musubi: (b) qsub -sync y -b y /bin/true, %d samples: p50 %.1f ms, p99 %.1f ms, min %.1f ms; load %s\n",
			nSync, ms(p50), ms(p99), ms(lat[0]), load())
		record(withBase(benchrec.Figure{Figure: "musubi_sync_latency_p50_ms", Value: ms(p50), Unit: "ms", Goal: "<= 50 ms"}, "sge_sync_latency_p50_ms"))
		record(withBase(benchrec.Figure{Figure: "musubi_sync_latency_p99_ms", Value: ms(p99), Unit: "ms"}, "sge_sync_latency_p99_ms"))
	}

	// (c) submission rates: qsub processes, and the batch API.
	if nSubmits > 0 {
		took, lat, err := m.cliSubmits(nSubmits)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("musubi: (c) %d sequential qsub processes (held jobs) in %.2f s, per call p50 %.1f ms p99 %.1f ms; load %s\n",
			nSubmits, took.Seconds(), ms(benchrec.Percentile(lat, 50)), ms(benchrec.Percentile(lat, 99)), load())
		record(withBase(benchrec.Figure{Figure: "musubi_qsub_cli_per_second", Value: float64(nSubmits) / took.Seconds(), Unit: "jobs/s"}, "sge_qsub_cli_per_second"))
	}
	if nBatch > 0 {
		took, per, err := m.batchSubmits(nBatch)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("musubi: (c) %d jobs through the batch API (%d per request) in %.2f s; load %s\n", nBatch, per, took.Seconds(), load())
		record(benchrec.Figure{Figure: "musubi_batch_submit_per_second", Value: float64(nBatch) / took.Seconds(), Unit: "jobs/s", Goal: ">= 1000"})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func sortedKeys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// load is the load average and CPU pressure, to read the figures by.
func load() string {
	la, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(la))
	s := "?"
	if len(f) > 0 {
		s = f[0]
	}
	if p, err := os.ReadFile("/proc/pressure/cpu"); err == nil {
		for _, w := range strings.Fields(string(p)) {
			if strings.HasPrefix(w, "avg10=") {
				return s + ", CPU pressure " + strings.TrimPrefix(w, "avg10=") + "%"
			}
		}
	}
	return s
}

// gridEngine runs bench/sge/{up,run,down}.sh and returns run.sh's
// figures, or nothing when Grid Engine is unavailable here.
func gridEngine(t *testing.T, jobs, syncSamples, submits int) map[string]float64 {
	out := map[string]float64{}
	if os.Getenv("MUSUBI_BENCH_SGE") == "off" {
		fmt.Println("Grid Engine baseline unavailable: skipped (MUSUBI_BENCH_SGE=off); musubi's absolute figures follow")
		return out
	}
	dir := filepath.Join(repoRoot(), "bench", "sge")
	up := exec.Command(filepath.Join(dir, "up.sh"), strconv.Itoa(slots))
	up.Stdout, up.Stderr = os.Stderr, os.Stderr
	err := up.Run()
	defer func() {
		down := exec.Command(filepath.Join(dir, "down.sh"))
		down.Stdout, down.Stderr = os.Stderr, os.Stderr
		if err := down.Run(); err != nil {
			fmt.Printf("warning: bench/sge/down.sh: %v\n", err)
		}
	}()
	if err != nil {
		why := err.Error()
		if exitStatus(err) == 3 {
			why = "bench/sge/up.sh cannot install or start Grid Engine here"
		}
		fmt.Printf("Grid Engine baseline unavailable: %s; musubi's absolute figures follow\n", why)
		return out
	}
	run := exec.Command(filepath.Join(dir, "run.sh"))
	run.Env = append(os.Environ(),
		"SGE_BENCH_JOBS="+strconv.Itoa(jobs), "SGE_BENCH_SYNC_SAMPLES="+strconv.Itoa(syncSamples),
		"SGE_BENCH_SUBMITS="+strconv.Itoa(submits), "SGE_BENCH_WRAPPER_SUBMITS=0")
	var stdout bytes.Buffer
	run.Stdout, run.Stderr = &stdout, os.Stderr
	t0 := time.Now()
	err = run.Run()
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			fmt.Println(line)
			continue
		}
		var f struct {
			Figure string  `json:"figure"`
			Value  float64 `json:"value"`
		}
		if jerr := json.Unmarshal([]byte(line), &f); jerr == nil && f.Figure != "" {
			out[f.Figure] = f.Value
		}
	}
	if err != nil {
		fmt.Printf("Grid Engine baseline incomplete: bench/sge/run.sh: %v (after %s)\n", err, time.Since(t0).Round(time.Second))
	}
	return out
}

func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// musubi is one federation: an ensemble, one agent process, the q*
// symlinks, and the user the jobs run as.
type musubi struct {
	t        *testing.T
	work     string
	bin      string
	socket   string
	client   *agentapi.Client
	cred     *syscall.Credential
	userName string
	// pids of the agent and of the ZooKeeper servers, for CPU accounting.
	agentPid int
	zkPids   []int
}

// cpuTicks are CPU times (clock ticks) of the agent, the ZooKeeper
// servers and the whole machine.
type cpuTicks struct{ agent, zk, all int64 }

func (m *musubi) cpu() cpuTicks {
	c := cpuTicks{agent: procTicks(m.agentPid)}
	for _, p := range m.zkPids {
		c.zk += procTicks(p)
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		// cpu user nice system idle iowait irq softirq ...
		for i, v := range f {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && i >= 1 && i <= 7 && i != 4 && i != 5 {
				c.all += n
			}
		}
	}
	return c
}

// perJob words the CPU used since before per job, in milliseconds.
func (c cpuTicks) perJob(before cpuTicks, jobs int) string {
	ms := func(t int64) float64 { return float64(t) * 10 / float64(jobs) } // USER_HZ 100
	return fmt.Sprintf("CPU per job: agent %.2f ms, ZooKeeper %.2f ms, whole machine %.2f ms",
		ms(c.agent-before.agent), ms(c.zk-before.zk), ms(c.all-before.all))
}

// procTicks is utime+stime of a process (0 if unknown).
func procTicks(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

func startMusubi(t *testing.T) *musubi {
	if err := zktest.Available(); err != nil {
		t.Skipf("skipping musubi: %v", err)
	}
	work, err := os.MkdirTemp("", "musubi-bench-jobs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &musubi{t: t, work: work, bin: filepath.Join(work, "bin"), socket: filepath.Join(work, "agent.sock")}
	// The binaries under test, built like make build (or given ones, to
	// compare builds back to back): musubi and the lean musubi-sge the
	// qsub symlinks point to.
	exe := filepath.Join(work, "musubi")
	if bin := os.Getenv("MUSUBI_BENCH_BIN"); bin != "" {
		for _, name := range []string{"musubi", "musubi-sge"} {
			src := filepath.Join(filepath.Dir(bin), name)
			if name == "musubi" {
				src = bin
			}
			data, err := os.ReadFile(src)
			if err == nil {
				err = os.WriteFile(filepath.Join(work, name), data, 0o755)
			}
			if err != nil && !(name == "musubi-sge" && errors.Is(err, fs.ErrNotExist)) {
				t.Fatalf("MUSUBI_BENCH_BIN: %v", err)
			}
		}
	} else {
		for _, name := range []string{"musubi", "musubi-sge"} {
			build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(work, name), "./cmd/"+name)
			build.Dir = repoRoot()
			build.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build %s: %v\n%s", name, err, out)
			}
		}
	}
	if out, err := exec.Command(exe, "install-cli", "--dir", m.bin).CombinedOutput(); err != nil {
		t.Fatalf("install-cli: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ens, err := zktest.Start(ctx, zktest.Options{Servers: 3})
	if err != nil {
		t.Fatalf("ZooKeeper: %v", err)
	}
	t.Cleanup(func() {
		if err := ens.Stop(); err != nil {
			t.Errorf("stop ZooKeeper: %v", err)
		}
	})
	logPath := filepath.Join(work, "agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(exe, "agent", "--zk", strings.Join(ens.Servers(), ","), "--federation", "bench", "--vc", "bench",
		"--node", "bench1", "--slots", strconv.Itoa(slots), "--spool", filepath.Join(work, "spool"),
		"--socket", m.socket, "--log-level", "warn")
	agent.Stdout, agent.Stderr = logf, logf
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	m.agentPid = agent.Process.Pid
	for id := 1; id <= 3; id++ {
		m.zkPids = append(m.zkPids, ens.PID(id))
	}
	done := make(chan error, 1)
	go func() { done <- agent.Wait(); logf.Close() }()
	t.Cleanup(func() {
		_ = agent.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = agent.Process.Kill()
			<-done
			t.Error("agent did not stop on SIGTERM")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("agent log:\n%s", b)
		}
	})
	m.client = agentapi.NewClient(m.socket)
	t.Cleanup(m.client.Close)
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := m.client.Hosts(ctx, false)
		if err == nil && len(h.Hosts) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.userName = "root"
	if u, err := user.Current(); err == nil {
		m.userName = u.Username
	}
	if os.Geteuid() == 0 {
		for _, name := range []string{"musubibench", "nobody"} {
			u, err := user.Lookup(name)
			if err != nil {
				continue
			}
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			m.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}
			m.userName = name
			break
		}
	}
	return m
}

// qsub runs one qsub process as the job user and returns its stdout.
func (m *musubi) qsub(args ...string) (string, time.Duration, error) {
	cmd := exec.Command(filepath.Join(m.bin, "qsub"), args...)
	cmd.Dir = m.work
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + m.work, "USER=" + m.userName, "LOGNAME=" + m.userName,
		agentapi.EnvSocket + "=" + m.socket}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: m.cred}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	took := time.Since(t0)
	if err != nil {
		return "", took, fmt.Errorf("qsub %v: %v: %s%s", args, err, out.String(), errb.String())
	}
	return out.String(), took, nil
}

var trivial = []string{"-b", "y", "-o", "/dev/null", "-e", "/dev/null"}

// trivialJobs submits n trivial jobs with sequential qsub processes and
// returns the time from just before the first submission to the end of
// the last job (from the accounting), and the time the submissions took.
// With several submitters, that many loops of qsub processes run side by
// side (a user's script with `&`, or several users).
//
// It also returns the CPU counters taken when the last job submitted has
// finished, before the accounting is read.
func (m *musubi) trivialJobs(n, submitters int) (total, submitting time.Duration, cpuEnd cpuTicks, err error) {
	ctx := context.Background()
	ids := make([]int64, n)
	errs := make([]error, submitters)
	t0 := time.Now()
	var sub sync.WaitGroup
	for s := 0; s < submitters; s++ {
		sub.Add(1)
		go func() {
			defer sub.Done()
			for i := s; i < n; i += submitters {
				out, _, err := m.qsub(append(append([]string{"-terse", "-N", "trivial"}, trivial...), "/bin/true")...)
				if err != nil {
					errs[s] = err
					return
				}
				id, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
				if err != nil {
					errs[s] = fmt.Errorf("qsub -terse printed %q", out)
					return
				}
				ids[i] = id
			}
		}()
	}
	sub.Wait()
	submitting = time.Since(t0)
	if err := errors.Join(errs...); err != nil {
		return 0, 0, cpuEnd, err
	}
	// Wait (on a watch, not polling) for the last job submitted, then for
	// each job while reading its accounting.
	if _, err := m.client.Wait(ctx, slices.Max(ids)); err != nil {
		return 0, 0, cpuEnd, err
	}
	cpuEnd = m.cpu()
	// Every job ran exactly once and succeeded; the last end is the
	// completion time.
	var mu sync.Mutex
	var last time.Time
	var problems []string
	var wg sync.WaitGroup
	next := make(chan int64)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				_, err := m.client.Wait(ctx, id)
				var acct []agentapi.AccountedJob
				if err == nil {
					acct, err = m.client.Accounting(ctx, strconv.FormatInt(id, 10))
				}
				mu.Lock()
				switch {
				case err != nil:
					problems = append(problems, fmt.Sprintf("job %d: %v", id, err))
				case len(acct) != 1 || len(acct[0].Records) != 1:
					problems = append(problems, fmt.Sprintf("job %d: %d accounting records", id, len(acct)))
				default:
					r := acct[0].Records[0]
					if r.ExitStatus != 0 || r.Failed != 0 {
						problems = append(problems, fmt.Sprintf("job %d: exit %d failed %d", id, r.ExitStatus, r.Failed))
					}
					if r.End.After(last) {
						last = r.End
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	drained := time.Since(t0)
	if len(problems) > 0 {
		return 0, 0, cpuEnd, fmt.Errorf("%d problems, e.g. %s", len(problems), problems[0])
	}
	total = last.Sub(t0)
	if total <= 0 || total > drained {
		total = drained
	}
	return total, submitting, cpuEnd, nil
}

// warmUp runs jobs through the whole system before the measurements (JIT
// of the ZooKeeper servers, the agent's caches), as the Grid Engine cell
// has run jobs before its measurements.
func (m *musubi) warmUp(n int) error {
	ctx := context.Background()
	res, err := sge.ParseQsub(sge.QsubRequest{
		Args:      append(append([]string{"-N", "warmup"}, trivial...), "/bin/true"),
		Submitter: sge.Submitter{User: m.userName, Host: "bench", Cwd: m.work, Home: m.work, Env: []string{"PATH=/usr/bin:/bin"}},
	})
	if err != nil {
		return err
	}
	specs := make([]*sge.JobSpec, n)
	for i := range specs {
		s := res.Spec
		specs[i] = &s
	}
	ids, err := m.client.Submit(ctx, specs...)
	if err != nil {
		return err
	}
	for i := 0; i < 20; i++ {
		if _, _, err := m.qsub(append(append([]string{"-terse", "-N", "warmup"}, trivial...), "/bin/true")...); err != nil {
			return err
		}
	}
	for _, id := range ids {
		if _, err := m.client.Wait(ctx, id); err != nil {
			return err
		}
	}
	jobs, err := m.client.Jobs(ctx, []string{"*"})
	if err != nil {
		return err
	}
	for _, j := range jobs.Jobs {
		if _, err := m.client.Wait(ctx, j.ID); err != nil {
			return err
		}
	}
	return nil
}

// syncLatency times n sequential `qsub -sync y` processes.
func (m *musubi) syncLatency(n int) ([]time.Duration, error) {
	var out []time.Duration
	for i := 0; i < n; i++ {
		_, took, err := m.qsub(append(append([]string{"-sync", "y", "-N", "lat"}, trivial...), "/bin/true")...)
		if err != nil {
			return nil, err
		}
		out = append(out, took)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// cliSubmits times n sequential qsub processes of held jobs (only the
// submission is timed, as in the Grid Engine baseline).
func (m *musubi) cliSubmits(n int) (time.Duration, []time.Duration, error) {
	var lat []time.Duration
	t0 := time.Now()
	for i := 0; i < n; i++ {
		_, took, err := m.qsub(append(append([]string{"-h", "-terse", "-N", "held"}, trivial...), "/bin/true")...)
		if err != nil {
			return 0, nil, err
		}
		lat = append(lat, took)
	}
	return time.Since(t0), lat, nil
}

// batchSubmits queues n held jobs through the agent API, many per request,
// from a few concurrent clients.
func (m *musubi) batchSubmits(n int) (time.Duration, int, error) {
	const per = 1000
	res, err := sge.ParseQsub(sge.QsubRequest{
		Args:      append(append([]string{"-h", "-N", "batch"}, trivial...), "/bin/true"),
		Submitter: sge.Submitter{User: m.userName, Host: "bench", Cwd: m.work, Home: m.work, Env: []string{"PATH=/usr/bin:/bin"}},
	})
	if err != nil {
		return 0, 0, err
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, n/per+1)
	t0 := time.Now()
	sem := make(chan struct{}, 4)
	for done := 0; done < n; done += per {
		k := min(per, n-done)
		specs := make([]*sge.JobSpec, k)
		for i := range specs {
			s := res.Spec
			specs[i] = &s
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ids, err := m.client.Submit(ctx, specs...)
			if err == nil && len(ids) != len(specs) {
				err = fmt.Errorf("%d ids for %d jobs", len(ids), len(specs))
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	close(errs)
	for err := range errs {
		return 0, 0, err
	}
	return took, per, nil
}
