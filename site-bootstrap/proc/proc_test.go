package proc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestStartRunningStop(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "followed")
	spec := Spec{
		Argv:    []string{"tail", "-f", marker},
		PIDFile: filepath.Join(dir, "run", "sleep.pid"),
		LogFile: filepath.Join(dir, "sleep.log"),
		Marker:  marker,
	}
	// tail -f of a missing file exits: Start notices.
	if _, err := Start(spec, 300*time.Millisecond); !errors.Is(err, ErrExited) {
		t.Fatalf("start of a failing command: %v, want ErrExited", err)
	}
	if _, ok := Running(spec.PIDFile, marker); ok {
		t.Fatal("a dead process reported running")
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pid, err := Start(spec, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = Stop(context.Background(), spec.PIDFile, marker, time.Second) })
	got, ok := Running(spec.PIDFile, marker)
	if !ok || got != pid {
		t.Fatalf("Running = %d, %v; want %d", got, ok, pid)
	}
	if _, ok := Running(spec.PIDFile, "something else"); ok {
		t.Fatal("a process not matching the marker reported running")
	}
	// A wrong marker never signals the process.
	if stopped, err := Stop(context.Background(), spec.PIDFile+".other", marker, time.Second); stopped || err != nil {
		t.Fatalf("stop without pid file: %v, %v", stopped, err)
	}
	stopped, err := Stop(context.Background(), spec.PIDFile, marker, 2*time.Second)
	if err != nil || !stopped {
		t.Fatalf("stop: %v, %v", stopped, err)
	}
	if alive(pid) {
		t.Fatalf("pid %d still alive", pid)
	}
	if _, err := os.Stat(spec.PIDFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file left: %v", err)
	}
	if stopped, err := Stop(context.Background(), spec.PIDFile, marker, time.Second); stopped || err != nil {
		t.Fatalf("second stop: %v, %v", stopped, err)
	}
}

func TestSpecValidation(t *testing.T) {
	for _, s := range []Spec{
		{},
		{Argv: []string{"x"}, PIDFile: "p", LogFile: "l"},
		{Argv: []string{"x"}, PIDFile: "p", LogFile: "l", Marker: "y"},
	} {
		if _, err := Start(s, 0); !errors.Is(err, ErrBadSpec) {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

// Start returns once the process shows its marker: exec.Cmd.Start
// returns while the kernel may still set the new program up, and
// /proc/<pid>/cmdline reads empty then (measured: one java start in four
// on a loaded 2-core machine, for up to ~100 µs).
func TestStartWaitsForMarker(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		spec := Spec{Argv: []string{"tail", "-f", marker}, PIDFile: filepath.Join(dir, "t.pid"),
			LogFile: filepath.Join(dir, "t.log"), Marker: marker}
		pid, err := Start(spec, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := Running(spec.PIDFile, marker)
		if stopped, err := Stop(context.Background(), spec.PIDFile, marker, time.Second); err != nil || (ok && !stopped) {
			t.Fatalf("stop: %v %v", stopped, err)
		}
		if !ok || got != pid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("start %d: Running = %d, %v right after Start returned %d", i, got, ok, pid)
		}
	}
}
