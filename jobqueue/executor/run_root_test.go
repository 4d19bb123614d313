//go:build linux

package executor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The tests in this file run jobs as nobody (uid 65534), which needs root;
// they create no users.

const nobodyID = 65534

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running jobs as another user (nobody) needs root")
	}
}

// nobodyEnv is a test environment nobody can use: searchable directories,
// home and working directory writable by all.
func nobodyEnv(t *testing.T) testEnv {
	t.Helper()
	e := newTestEnv(t)
	for dir, mode := range map[string]os.FileMode{
		filepath.Dir(e.root): 0o755, e.root: 0o755, e.spool: 0o755, e.home: 0o777, e.work: 0o777,
	} {
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func nobodyRequest(t *testing.T, e testEnv, script string) Request {
	req := e.request(t, script)
	req.User, req.UID, req.GID, req.Groups = "nobody", nobodyID, nobodyID, nil
	return req
}

func owner(t *testing.T, path string) (uid, gid uint32) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

// TestRunAsOtherUser: the job runs with the user's uid, gid and groups; its
// output files, files and TMPDIR belong to the user.
func TestRunAsOtherUser(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	e := nobodyEnv(t)
	req := nobodyRequest(t, e, `id -u; id -g; id -G; echo "$HOME $USER $LOGNAME"
stat -c %u:%g "$TMPDIR"
echo data > "$TMPDIR/f" && touch created && echo ok
`)
	req.Groups = []uint32{nobodyID, 100}
	res := mustRun(t, newTestRunner(t), req)
	if res.ExitStatus != 0 {
		t.Fatalf("exit %d: %s", res.ExitStatus, readFile(t, res.StderrPath))
	}
	want := "65534\n65534\n65534 100\n" + e.home + " nobody nobody\n65534:65534\nok\n"
	if got := readFile(t, res.StdoutPath); got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	for _, p := range []string{res.StdoutPath, res.StderrPath, filepath.Join(e.work, "created")} {
		if uid, gid := owner(t, p); uid != nobodyID || gid != nobodyID {
			t.Errorf("%s owned by %d:%d, want nobody", p, uid, gid)
		}
	}
}

// TestOtherUserCannotUseRootsRights: output files and the working directory
// are checked with the job user's permissions, so a job cannot write where
// its user cannot (Grid Engine's shepherd opens them after setuid).
func TestOtherUserCannotUseRootsRights(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	e := nobodyEnv(t)
	private := filepath.Join(e.root, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(e.work, "roots.log")
	if err := os.WriteFile(rootFile, []byte("root's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mod    func(req *Request)
		kind   error
		reason string
	}{
		{"output in a private dir", func(req *Request) { req.Stdout = filepath.Join(private, "x.out") }, ErrOutputFile,
			// Grid Engine's shepherd stat()s the path first (as the user).
			`can't stat() "` + filepath.Join(private, "x.out") + `" as stdout_path: Permission denied`},
		{"root's output file", func(req *Request) { req.Stdout = "roots.log" }, ErrOutputFile,
			`error: can't open output file "` + rootFile + `": Permission denied`},
		{"private workdir", func(req *Request) { req.Workdir = private }, ErrNoWorkdir,
			`error: can't chdir to ` + private + `: Permission denied`},
	} {
		req := nobodyRequest(t, e, "touch ran\n")
		tc.mod(&req)
		res, err := run(t, newTestRunner(t), req)
		if !errors.Is(err, ErrJobError) || !errors.Is(err, tc.kind) || res.Err != tc.reason {
			t.Errorf("%s: err %v, reason %q, want %v and %q", tc.name, err, res.Err, tc.kind, tc.reason)
		}
	}
	if got := readFile(t, rootFile); got != "root's\n" {
		t.Errorf("root's file changed: %q", got)
	}
	if ents, _ := os.ReadDir(private); len(ents) != 0 {
		t.Errorf("files created in the private dir")
	}
	if _, err := os.Stat(filepath.Join(e.work, "ran")); err == nil {
		t.Errorf("a job ran")
	}
	assertSpoolEmpty(t, e.spool)
}

// TestOtherUserSpoolNotSearchable: a spool directory the job user cannot
// reach is the host's problem, not the job's.
func TestOtherUserSpoolNotSearchable(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	e := nobodyEnv(t)
	if err := os.Chmod(e.spool, 0o700); err != nil {
		t.Fatal(err)
	}
	req := nobodyRequest(t, e, "touch ran\n")
	_, err := run(t, newTestRunner(t), req)
	if !errors.Is(err, ErrHost) || errors.Is(err, ErrJobError) || !strings.Contains(err.Error(), "spool") {
		t.Errorf("err %v, want ErrHost about the spool directory", err)
	}
	assertSpoolEmpty(t, e.spool)
}

// TestQdelOtherUser: qdel kills another user's job and its descendants.
func TestQdelOtherUser(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	e := nobodyEnv(t)
	testQdel(t, e, nobodyRequest(t, e, qdelScript))
}
