package agentapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// fakeBackend records the callers it sees and answers from fields.
type fakeBackend struct {
	mu      sync.Mutex
	callers []Caller
	specs   []*sge.JobSpec
	err     error
	block   chan struct{} // Wait blocks on it (or ctx)
}

func (f *fakeBackend) saw(c Caller) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callers = append(f.callers, c)
	return f.err
}

func (f *fakeBackend) Submit(_ context.Context, c Caller, specs []*sge.JobSpec) ([]int64, error) {
	if err := f.saw(c); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]int64, len(specs))
	for i, s := range specs {
		f.specs = append(f.specs, s)
		ids[i] = int64(len(f.specs))
	}
	return ids, nil
}

func (f *fakeBackend) Wait(ctx context.Context, c Caller, id int64) ([]sge.SyncResult, error) {
	if err := f.saw(c); err != nil {
		return nil, err
	}
	select {
	case <-f.block:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return []sge.SyncResult{{ExitCode: int(id)}}, nil
}

func (f *fakeBackend) Jobs(_ context.Context, c Caller, users []string) ([]*jobqueue.Job, error) {
	return []*jobqueue.Job{{ID: 7, Spec: &sge.JobSpec{Name: "x", Submitter: sge.Submitter{User: users[0]}}, State: jobqueue.StateQueued}}, f.saw(c)
}

func (f *fakeBackend) Details(_ context.Context, c Caller, refs []string) (DetailsResponse, error) {
	return DetailsResponse{Unknown: refs}, f.saw(c)
}

func (f *fakeBackend) Delete(_ context.Context, c Caller, r DeleteRequest) ([]sge.DeleteResult, error) {
	return []sge.DeleteResult{{Outcome: sge.Deleted, User: c.User, Job: 1}}, f.saw(c)
}

func (f *fakeBackend) Hold(_ context.Context, c Caller, r HoldRequest) (Output, error) {
	return Output{Stdout: []string{fmt.Sprint(r.Release)}}, f.saw(c)
}

func (f *fakeBackend) Alter(_ context.Context, c Caller, r *sge.QalterRequest) (Output, error) {
	return Output{Stdout: r.Set}, f.saw(c)
}

func (f *fakeBackend) Accounting(_ context.Context, c Caller, ref string) ([]AccountedJob, error) {
	return nil, f.saw(c)
}

func (f *fakeBackend) Hosts(_ context.Context, c Caller, jobs bool) (HostsResponse, error) {
	return HostsResponse{Hosts: []Host{{HostInfo: jobqueue.HostInfo{Host: "n1", Slots: 2}, SlotsUsed: 1}}}, f.saw(c)
}

// serve starts a server on a socket in a temporary directory and returns
// a client of it; the server stops when the test ends.
func serve(t *testing.T, b Backend, cfg ServerConfig) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Backend = b
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c := NewClient(sock)
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c
}

func names() ServerConfig {
	return ServerConfig{
		LookupUser:  func(id uint32) (string, error) { return fmt.Sprintf("user%d", id), nil },
		LookupGroup: func(id uint32) (string, error) { return fmt.Sprintf("group%d", id), nil },
	}
}

func TestCallerComesFromTheSocket(t *testing.T) {
	fb := &fakeBackend{}
	c := serve(t, fb, names())
	ctx := context.Background()
	who, err := c.Whoami(ctx)
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if who.UID != uid || who.GID != gid || who.PID != int32(os.Getpid()) {
		t.Fatalf("whoami = %+v, want uid %d gid %d pid %d", who, uid, gid, os.Getpid())
	}
	if who.User != fmt.Sprintf("user%d", uid) || who.Group != fmt.Sprintf("group%d", gid) {
		t.Fatalf("names = %q/%q", who.User, who.Group)
	}
	// The submitter named in the body is not who the backend sees.
	spec := &sge.JobSpec{Name: "j", Submitter: sge.Submitter{User: "mallory", UID: 4242}}
	ids, err := c.Submit(ctx, spec, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0] != 1 || ids[1] != 2 {
		t.Fatalf("ids = %v", ids)
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if got := fb.callers[len(fb.callers)-1]; got.UID != uid || got.User != who.User {
		t.Fatalf("backend saw caller %+v, want uid %d", got, uid)
	}
}

func TestUnknownUserIsRefused(t *testing.T) {
	fb := &fakeBackend{}
	cfg := names()
	cfg.LookupUser = func(uint32) (string, error) { return "", errors.New("unknown uid") }
	c := serve(t, fb, cfg)
	_, err := c.Jobs(context.Background(), []string{"*"})
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("err = %v, want ErrPermission", err)
	}
	if len(fb.callers) != 0 {
		t.Fatalf("backend was called by an unidentified caller")
	}
}

func TestErrorsKeepTheirKind(t *testing.T) {
	cases := []struct {
		err  error
		want error
	}{
		{fmt.Errorf("x: %w", jobqueue.ErrNoSuchJob), ErrNotFound},
		{fmt.Errorf("x: %w", jobqueue.ErrPermission), ErrPermission},
		{fmt.Errorf("x: %w", jobqueue.ErrInvalidSpec), ErrInvalid},
		{context.DeadlineExceeded, ErrUnavailable},
		{errors.New("boom"), ErrInternal},
		{&Error{Kind: KindInvalid, Message: "m"}, ErrInvalid},
	}
	for _, tc := range cases {
		fb := &fakeBackend{err: tc.err}
		c := serve(t, fb, names())
		_, err := c.Hosts(context.Background(), false)
		if !errors.Is(err, tc.want) {
			t.Errorf("backend error %v: client got %v, want %v", tc.err, err, tc.want)
		}
	}
	// A Grid Engine error arrives intact, to be printed as is.
	se := &sge.Error{Kind: sge.KindRejected, Msg: "no suitable queues", Exit: 1}
	c := serve(t, &fakeBackend{err: fmt.Errorf("wrapped: %w", se)}, names())
	_, err := c.Submit(context.Background(), &sge.JobSpec{Name: "x"})
	var got *sge.Error
	if !errors.As(err, &got) || got.Text() != se.Text() || got.Exit != 1 {
		t.Fatalf("err = %#v, want the sge error %q", err, se.Text())
	}
}

func TestTypedCallsRoundTrip(t *testing.T) {
	c := serve(t, &fakeBackend{}, names())
	ctx := context.Background()
	jobs, err := c.Jobs(ctx, []string{"alice"})
	if err != nil || len(jobs.Jobs) != 1 || jobs.Jobs[0].ID != 7 || jobs.Jobs[0].Spec.Submitter.User != "alice" {
		t.Fatalf("Jobs = %+v, %v", jobs, err)
	}
	d, err := c.Details(ctx, []string{"99"})
	if err != nil || len(d.Unknown) != 1 || d.Unknown[0] != "99" {
		t.Fatalf("Details = %+v, %v", d, err)
	}
	res, err := c.Delete(ctx, DeleteRequest{Jobs: []sge.JobTaskRef{{Job: "1"}}})
	if err != nil || len(res) != 1 || res[0].Outcome != sge.Deleted {
		t.Fatalf("Delete = %+v, %v", res, err)
	}
	out, err := c.Hold(ctx, HoldRequest{Release: true})
	if err != nil || len(out.Stdout) != 1 || out.Stdout[0] != "true" {
		t.Fatalf("Hold = %+v, %v", out, err)
	}
	out, err = c.Alter(ctx, &sge.QalterRequest{Set: []string{"-N"}})
	if err != nil || len(out.Stdout) != 1 || out.Stdout[0] != "-N" {
		t.Fatalf("Alter = %+v, %v", out, err)
	}
	h, err := c.Hosts(ctx, false)
	if err != nil || len(h.Hosts) != 1 || h.Hosts[0].Host != "n1" || h.Hosts[0].SlotsUsed != 1 || h.Hosts[0].Slots != 2 {
		t.Fatalf("Hosts = %+v, %v", h, err)
	}
}

func TestShutdownEndsLongWaits(t *testing.T) {
	fb := &fakeBackend{block: make(chan struct{})}
	sock := filepath.Join(t.TempDir(), "a.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerConfig{Backend: fb, LookupUser: names().LookupUser, LookupGroup: names().LookupGroup})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c := NewClient(sock)
	defer c.Close()
	waitErr := make(chan error, 1)
	go func() {
		_, err := c.Wait(context.Background(), 3)
		waitErr <- err
	}()
	// The wait is in the backend once the backend has seen its caller.
	deadline := time.Now().Add(5 * time.Second)
	for {
		fb.mu.Lock()
		n := len(fb.callers)
		fb.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Wait never reached the backend")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
	if err := <-waitErr; err == nil {
		t.Fatal("Wait succeeded although the agent stopped")
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sub", "agent.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket mode = %v, %v; want 0666", fi.Mode(), err)
	}
	if _, err := Listen(sock); err == nil {
		t.Fatal("a second agent could listen on a live socket")
	}
	// A stale socket (its listener gone without unlinking) is replaced.
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	l.Close()
	l2, err := Listen(sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
	// A regular file is not removed.
	plain := filepath.Join(dir, "file")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(plain); err == nil {
		t.Fatal("Listen replaced a regular file")
	}
}

func TestUnreachableAgent(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	_, err := c.Whoami(context.Background())
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}
