//go:build linux

package executor

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary a runner process for
// TestRunnerKilled: it runs the request in the variable's JSON, churns
// OS threads, and blocks until killed.
const helperEnv = "MUSUBI_EXECUTOR_TEST_RUNNER"

// TestHelperRunner is the runner process of TestRunnerKilled (skipped
// unless started by it).
func TestHelperRunner(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process of TestRunnerKilled")
	}
	var req Request
	if err := json.Unmarshal([]byte(spec), &req); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = (&Runner{Hostname: testHost}).Run(context.Background(), req)
	}()
	ready := filepath.Join(req.Workdir, "ready")
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// End many OS threads (a goroutine that exits locked ends its thread),
	// as the agent's file-system checks do: the job must not die of it.
	var churn sync.WaitGroup
	for range 4 {
		churn.Add(1)
		go func() {
			defer churn.Done()
			for range 50 {
				_ = asUser(nil, func() error { return nil })
			}
		}()
	}
	churn.Wait()
	if err := os.WriteFile(filepath.Join(req.Workdir, "churned"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	<-done
}

// TestRunnerKilled: a runner killed with SIGKILL takes the job's main
// process with it (parent-death signal), even after the runner's OS
// threads came and went; what the job started in the background is
// killed by KillLeftovers from the record in the spool, which also
// removes the job's directory, and nothing else is touched.
func TestRunnerKilled(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	req := e.request(t, `sleep 100 &
echo $! > bg
echo $$ > main
touch ready
wait
`)
	spec, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	// An unrelated process in a group of its own, started after the job's
	// leader: it must survive.
	other := exec.Command("/bin/sh", "-c", "exec sleep 100")
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	helper := exec.Command(os.Args[0], "-test.run=^TestHelperRunner$", "-test.v")
	helper.Env = append(os.Environ(), helperEnv+"="+string(spec))
	var out strings.Builder
	helper.Stdout, helper.Stderr = &out, &out
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	helperDone := make(chan struct{})
	go func() { _ = helper.Wait(); close(helperDone) }()
	defer func() {
		_ = helper.Process.Kill()
		<-helperDone
	}()
	eventually(t, 20*time.Second, "the helper's job to start and the thread churn", func() bool {
		_, err := os.Stat(filepath.Join(e.work, "churned"))
		return err == nil
	})
	mainPid := readPids(t, filepath.Join(e.work, "main"))[0]
	bg := readPids(t, filepath.Join(e.work, "bg"))[0]
	if !processAlive(mainPid) {
		t.Fatalf("the job's main process died while the runner lived (threads ending killed it?)\n%s", out.String())
	}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = other.Process.Kill()
		_ = other.Wait()
	}()

	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-helperDone
	eventually(t, 10*time.Second, "the job's main process to die with its runner", func() bool { return !processAlive(mainPid) })
	if !processAlive(bg) {
		t.Fatal("the background process died too: nothing left for KillLeftovers to do")
	}
	ents, err := os.ReadDir(e.spool)
	if err != nil || len(ents) != 1 {
		t.Fatalf("spool: %v %v, want the job's directory", ents, err)
	}
	if _, err := os.Readlink(filepath.Join(e.spool, ents[0].Name(), groupRecord)); err != nil {
		t.Fatalf("no group record: %v", err)
	}
	// Something that is not a job's directory stays.
	keep := filepath.Join(e.spool, "not-a-job")
	if err := os.Mkdir(keep, 0o755); err != nil {
		t.Fatal(err)
	}

	n, err := KillLeftovers(e.spool, newTestRunner(t).log())
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("killed %d processes, want 1", n)
	}
	if processAlive(bg) {
		t.Errorf("background process %d of the job survived KillLeftovers", bg)
	}
	if !processAlive(other.Process.Pid) {
		t.Error("an unrelated process was killed")
	}
	ents, _ = os.ReadDir(e.spool)
	if len(ents) != 1 || ents[0].Name() != "not-a-job" {
		t.Errorf("spool after KillLeftovers: %v", ents)
	}
	if n, err := KillLeftovers(e.spool, nil); n != 0 || err != nil {
		t.Errorf("second KillLeftovers: %d, %v", n, err)
	}
}

// TestKillLeftoversSparesReusedGroup: a record whose leader is gone names
// a group whose members do not carry the job's TMPDIR: a reused process
// group id; nothing is killed.
func TestKillLeftoversSparesReusedGroup(t *testing.T) {
	t.Parallel()
	spool := t.TempDir()
	cmd := exec.Command("/bin/sh", "-c", "sleep 100 & echo $! ; exec sleep 100")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = killGroup(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	dir := filepath.Join(spool, "7.1.123")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The record says the leader started at time 1 (long gone), so the
	// live leader is another process; its group lacks the marker.
	target := strings.Join([]string{itoa(cmd.Process.Pid), "1", bootID(), filepath.Join(dir, "tmp")}, ":")
	if err := os.Symlink(target, filepath.Join(dir, groupRecord)); err != nil {
		t.Fatal(err)
	}
	n, err := KillLeftovers(spool, nil)
	if err != nil || n != 0 {
		t.Fatalf("KillLeftovers: %d, %v", n, err)
	}
	if !processAlive(cmd.Process.Pid) {
		t.Error("a process of a reused group id was killed")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the stale directory stays: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
