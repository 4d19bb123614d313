package nodesync

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testKey is a well-formed ed25519 authorized_keys line.
func testKey(seed byte, comment string) string {
	typ := "ssh-ed25519"
	var b bytes.Buffer
	_ = binary.Write(&b, binary.BigEndian, uint32(len(typ)))
	b.WriteString(typ)
	_ = binary.Write(&b, binary.BigEndian, uint32(32))
	b.Write(bytes.Repeat([]byte{seed}, 32))
	return typ + " " + base64.StdEncoding.EncodeToString(b.Bytes()) + " " + comment
}

const (
	hashA = "$y$j9T$abcdefghABCDEFGH$0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
	hashB = "$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
)

// Foreign content of the test root: system users, one person who is not
// musubi's (carol, uid 1000), her group memberships.
const (
	basePasswd  = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n+nis-line\ncarol:x:1000:1000:Carol,,,:/home/carol:/bin/bash\n"
	baseGroup   = "root:x:0:\nsudo:x:27:carol\nusers:x:100:\ncarol:x:1000:\n"
	baseShadow  = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\ncarol:$6$carolsalt$carolhashcarolhashcarolhash:19000:0:99999:7:::\n"
	baseGshadow = "root:*::\nsudo:*::carol\nusers:*::\ncarol:!::\n"
)

func newRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		data string
		mode os.FileMode
	}{"passwd": {basePasswd, 0o644}, "group": {baseGroup, 0o644}, "shadow": {baseShadow, 0o640}, "gshadow": {baseGshadow, 0o640}} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(c.data), c.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(etc, name), c.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "home", "carol", ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	return root
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

func wantLine(t *testing.T, file, content, line string) {
	t.Helper()
	if !slices.Contains(lines(content), line) {
		t.Errorf("%s lacks %q:\n%s", file, line, content)
	}
}

func noLineFor(t *testing.T, file, content, name string) {
	t.Helper()
	for _, l := range lines(content) {
		if strings.HasPrefix(l, name+":") {
			t.Errorf("%s still has %q", file, l)
		}
	}
}

func TestFileDBAddChangeRemove(t *testing.T) {
	root := newRoot(t)
	var logs bytes.Buffer
	db := &FileDB{Root: root, Now: func() time.Time { return time.Unix(20000*86400, 0) },
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx := context.Background()
	k1, k2, k3 := testKey(1, "alice@laptop"), testKey(2, "alice@desk"), testKey(3, "bob@x")
	alice := User{Name: "alice", UID: 10000, GID: 10000, Home: "/home/alice", Shell: "/bin/bash", Groups: []string{"sudo", "hpc"},
		PasswordHash: hashA, SSHKeys: []string{k1, k2}}
	bob := User{Name: "bob", UID: 10001, GID: 10001, Home: "/home/bob", Shell: "/bin/sh", Groups: []string{"hpc"}, SSHKeys: []string{k3}}
	p := func(name string) string { return filepath.Join(root, "etc", name) }

	ch, err := db.Apply(ctx, []User{alice, bob})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Added, []string{"alice", "bob"}) || len(ch.Updated)+len(ch.Removed)+len(ch.Conflicts) != 0 {
		t.Fatalf("changes %+v", ch)
	}
	passwd, group, shadow, gshadow := readFile(t, p("passwd")), readFile(t, p("group")), readFile(t, p("shadow")), readFile(t, p("gshadow"))
	if !strings.HasPrefix(passwd, basePasswd) {
		t.Errorf("foreign passwd lines changed:\n%s", passwd)
	}
	wantLine(t, "passwd", passwd, "alice:x:10000:10000:"+ManagedGECOS+":/home/alice:/bin/bash")
	wantLine(t, "passwd", passwd, "bob:x:10001:10001:"+ManagedGECOS+":/home/bob:/bin/sh")
	wantLine(t, "shadow", shadow, "alice:"+hashA+":20000:0:99999:7:::")
	wantLine(t, "shadow", shadow, "bob:*:20000:0:99999:7:::") // keys only
	hpcGID := groupGID("hpc", map[int]string{})
	wantLine(t, "group", group, "sudo:x:27:carol,alice")
	wantLine(t, "group", group, "alice:x:10000:")
	wantLine(t, "group", group, "bob:x:10001:")
	wantLine(t, "group", group, fmt.Sprintf("hpc:x:%d:alice,bob", hpcGID))
	wantLine(t, "gshadow", gshadow, "sudo:*::carol,alice")
	wantLine(t, "gshadow", gshadow, "hpc:!::alice,bob")
	for name, mode := range map[string]os.FileMode{"passwd": 0o644, "group": 0o644, "shadow": 0o640, "gshadow": 0o640} {
		if fi, _ := os.Stat(p(name)); fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v kept", name, fi.Mode().Perm(), mode)
		}
	}
	keys := filepath.Join(root, "home", "alice", ".ssh", "authorized_keys")
	if got := readFile(t, keys); got != string(renderKeys([]string{k1, k2})) {
		t.Errorf("alice's authorized_keys:\n%s", got)
	}
	checkOwner(t, keys, 10000, 10000, 0o600)
	checkOwner(t, filepath.Join(root, "home", "alice", ".ssh"), 10000, 10000, 0o700)
	checkOwner(t, filepath.Join(root, "home", "alice"), 10000, 10000, 0o700)
	if strings.Contains(logs.String(), hashA) {
		t.Error("the password hash was logged")
	}

	// Idempotent: nothing changes, nothing is rewritten.
	stats := map[string]uint64{}
	for _, n := range []string{"passwd", "group", "shadow", "gshadow"} {
		stats[n] = inode(t, p(n))
	}
	stats["keys"] = inode(t, keys)
	ch, err = db.Apply(ctx, []User{alice, bob})
	if err != nil || !ch.Empty() || len(ch.Conflicts) != 0 {
		t.Fatalf("second Apply: %+v, %v", ch, err)
	}
	for _, n := range []string{"passwd", "group", "shadow", "gshadow"} {
		if inode(t, p(n)) != stats[n] {
			t.Errorf("%s rewritten by an Apply with nothing to change", n)
		}
	}
	if inode(t, keys) != stats["keys"] {
		t.Error("authorized_keys rewritten by an Apply with nothing to change")
	}

	// The user's own line outside the block stays; keys and hash change.
	own := testKey(9, "alice-own")
	if err := os.WriteFile(keys, []byte(own+"\n"+readFile(t, keys)), 0o600); err != nil {
		t.Fatal(err)
	}
	alice.SSHKeys = []string{k2}
	alice.PasswordHash = hashB
	alice.Groups = []string{"hpc"}
	ch, err = db.Apply(ctx, []User{alice, bob})
	if err != nil || !slices.Equal(ch.Updated, []string{"alice"}) || len(ch.Added)+len(ch.Removed) != 0 {
		t.Fatalf("changing alice: %+v, %v", ch, err)
	}
	if got := readFile(t, keys); got != own+"\n"+string(renderKeys([]string{k2})) {
		t.Errorf("authorized_keys after the change:\n%s", got)
	}
	wantLine(t, "shadow", readFile(t, p("shadow")), "alice:"+hashB+":20000:0:99999:7:::")
	wantLine(t, "group", readFile(t, p("group")), "sudo:x:27:carol")

	// Removing bob: his lines, memberships and private group go; carol
	// and her files are untouched; his home stays (data is never
	// deleted) but his keys block goes.
	ch, err = db.Apply(ctx, []User{alice})
	if err != nil || !slices.Equal(ch.Removed, []string{"bob"}) {
		t.Fatalf("removing bob: %+v, %v", ch, err)
	}
	passwd, group, shadow, gshadow = readFile(t, p("passwd")), readFile(t, p("group")), readFile(t, p("shadow")), readFile(t, p("gshadow"))
	noLineFor(t, "passwd", passwd, "bob")
	noLineFor(t, "shadow", shadow, "bob")
	noLineFor(t, "group", group, "bob")
	wantLine(t, "group", group, fmt.Sprintf("hpc:x:%d:alice", hpcGID))
	wantLine(t, "passwd", passwd, "carol:x:1000:1000:Carol,,,:/home/carol:/bin/bash")
	wantLine(t, "shadow", shadow, "carol:$6$carolsalt$carolhashcarolhashcarolhash:19000:0:99999:7:::")
	wantLine(t, "gshadow", gshadow, "carol:!::")
	if got := readFile(t, filepath.Join(root, "home", "bob", ".ssh", "authorized_keys")); got != "" {
		t.Errorf("bob's keys left: %q", got)
	}

	// Nobody left: every musubi group goes, the system is as it was.
	if _, err := db.Apply(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"passwd": basePasswd, "group": baseGroup, "shadow": baseShadow, "gshadow": baseGshadow} {
		if got := readFile(t, p(name)); got != want {
			t.Errorf("%s after removing everyone:\n%s\nwant\n%s", name, got, want)
		}
	}
	if got := readFile(t, filepath.Join(root, "var", "lib", "musubi", "groups")); got != "" {
		t.Errorf("state file still lists %q", got)
	}
}

func checkOwner(t *testing.T, p string, uid, gid int, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
	}
	if os.Geteuid() != 0 {
		return // ownership can only be given by root
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
	}
}

func TestFileDBConflictsAndForeignUsers(t *testing.T) {
	root := newRoot(t)
	db := &FileDB{Root: root}
	ctx := context.Background()
	// carol is not musubi's, even with a managed-looking record; uid 1000
	// is hers; a system name and a bad key are refused; a duplicate uid
	// keeps the first.
	users := []User{
		{Name: "carol", UID: 10005, GID: 10005, Home: "/home/carol", Shell: "/bin/bash"},
		{Name: "dave", UID: 1000, GID: 1000, Home: "/home/dave", Shell: "/bin/bash"},
		{Name: "root", UID: 10006, GID: 10006, Home: "/root", Shell: "/bin/bash"},
		{Name: "erin", UID: 10007, GID: 10007, Home: "/home/erin", Shell: "/bin/bash", SSHKeys: []string{"ssh-ed25519 AAAA\nssh-rsa x"}},
		{Name: "frank", UID: 10008, GID: 10008, Home: "/home/frank", Shell: "/bin/bash"},
		{Name: "gina", UID: 10008, GID: 10008, Home: "/home/gina", Shell: "/bin/bash"},
		{Name: "hal", UID: 10009, GID: 10009, Home: "/home/../etc", Shell: "/bin/bash"},
	}
	ch, err := db.Apply(ctx, users)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Added, []string{"frank"}) {
		t.Errorf("added %v, want only frank", ch.Added)
	}
	for _, n := range []string{"carol", "dave", "root", "erin", "gina", "hal"} {
		if ch.Conflicts[n] == "" {
			t.Errorf("%s: no conflict reported (%+v)", n, ch.Conflicts)
		}
	}
	passwd := readFile(t, filepath.Join(root, "etc", "passwd"))
	wantLine(t, "passwd", passwd, "carol:x:1000:1000:Carol,,,:/home/carol:/bin/bash")
	for _, n := range []string{"dave", "erin", "gina", "hal"} {
		noLineFor(t, "passwd", passwd, n)
	}
	// A managed user whose home belongs to someone else gets no keys.
	if os.Geteuid() == 0 {
		if err := os.MkdirAll(filepath.Join(root, "home", "ivan"), 0o755); err != nil {
			t.Fatal(err)
		}
		ivan := User{Name: "ivan", UID: 10010, GID: 10010, Home: "/home/ivan", Shell: "/bin/bash", SSHKeys: []string{testKey(4, "i")}}
		ch, err = db.Apply(ctx, []User{ivan})
		if err != nil || ch.Conflicts["ivan"] == "" || !strings.Contains(ch.Conflicts["ivan"], "not owned") {
			t.Errorf("home owned by root: %+v, %v", ch, err)
		}
		if _, err := os.Stat(filepath.Join(root, "home", "ivan", ".ssh")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("keys written into a home the user does not own: %v", err)
		}
	}
	// Nobody wanted: carol (foreign, uid 1000) is never removed.
	if _, err := db.Apply(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "etc", "passwd")); got != basePasswd {
		t.Errorf("passwd:\n%s\nwant\n%s", got, basePasswd)
	}
}

func TestFileDBSymlinkedSSHDirRefused(t *testing.T) {
	root := newRoot(t)
	db := &FileDB{Root: root}
	home := filepath.Join(root, "home", "mallory")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(home, 10020, 10020); err != nil {
			t.Fatal(err)
		}
	}
	// mallory points .ssh at /etc, hoping root writes there.
	if err := os.Symlink(filepath.Join(root, "etc"), filepath.Join(home, ".ssh")); err != nil {
		t.Fatal(err)
	}
	u := User{Name: "mallory", UID: 10020, GID: 10020, Home: "/home/mallory", Shell: "/bin/bash", SSHKeys: []string{testKey(5, "m")}}
	ch, err := db.Apply(context.Background(), []User{u})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Conflicts["mallory"] == "" {
		t.Errorf("a symlinked .ssh was accepted: %+v", ch)
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "authorized_keys")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("keys written through the link: %v", err)
	}
}

// TestFileDBWaitsForTheLock: a process holding etc/.pwd.lock (as the
// shadow tools do) makes Apply wait, then give up with ErrLocked.
func TestFileDBWaitsForTheLock(t *testing.T) {
	if p := os.Getenv("NODESYNC_HOLD_LOCK"); p != "" {
		return // the helper process's own run of this test: see TestMain
	}
	root := newRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "NODESYNC_HOLD_LOCK="+filepath.Join(root, "etc", ".pwd.lock"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "locked" {
		t.Fatalf("helper: %q, %v", buf, err)
	}
	db := &FileDB{Root: root, LockTimeout: 300 * time.Millisecond}
	start := time.Now()
	_, err = db.Apply(context.Background(), []User{{Name: "alice", UID: 10000, GID: 10000, Home: "/home/alice", Shell: "/bin/bash"}})
	if !errors.Is(err, ErrLocked) || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("Apply while locked: %v after %v, want ErrLocked after the timeout", err, time.Since(start))
	}
	if got := readFile(t, filepath.Join(root, "etc", "passwd")); got != basePasswd {
		t.Errorf("passwd changed while locked")
	}
	stdin.Close() // the helper releases the lock and exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if _, err := db.Apply(context.Background(), []User{{Name: "alice", UID: 10000, GID: 10000, Home: "/home/alice", Shell: "/bin/bash"}}); err != nil {
		t.Fatalf("Apply after the lock was released: %v", err)
	}
}

// TestMain lets the test binary act as the lock-holding helper.
func TestMain(m *testing.M) {
	if p := os.Getenv("NODESYNC_HOLD_LOCK"); p != "" {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			os.Exit(3)
		}
		lk := syscall.Flock_t{Type: syscall.F_WRLCK}
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLKW, &lk); err != nil {
			os.Exit(4)
		}
		os.Stdout.WriteString("locked")
		_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes stdin
		os.Exit(0)
	}
	os.Exit(m.Run())
}
