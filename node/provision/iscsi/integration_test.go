//go:build integration

package iscsi_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/iscsi"
	"github.com/musubi-fabric/musubi/node/provision/provisiontest"
)

// needTgt skips the test unless it runs as root with tgt and libiscsi's
// tools installed.
func needTgt(t *testing.T, progs ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (tgtd serves only root on its management socket)")
	}
	for _, p := range append([]string{"tgtd", "tgtadm", "cp"}, progs...) {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s not installed (Debian packages tgt, libiscsi-bin, qemu-utils, qemu-block-extra)", p)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tgtHost is one storage host: a tgtd of the test's own on a free port,
// its state directory and the volumes' directory.
type tgtHost struct {
	dir, vols, portal string
	d                 *iscsi.Daemon
}

func startHost(t *testing.T) *tgtHost {
	t.Helper()
	// Short: tgtd's socket path must fit in 107 bytes.
	dir, err := os.MkdirTemp("", "mtgt")
	if err != nil {
		t.Fatal(err)
	}
	h := &tgtHost{dir: dir, vols: filepath.Join(dir, "vols"), portal: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	h.start(t)
	t.Cleanup(func() {
		if h.d != nil {
			h.stop(t)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	return h
}

func (h *tgtHost) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := iscsi.StartDaemon(ctx, iscsi.DaemonConfig{Dir: filepath.Join(h.dir, "tgtd"), Portal: h.portal})
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
}

func (h *tgtHost) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pid := h.d.PID()
	if err := h.d.Stop(ctx); err != nil {
		t.Error(err)
	}
	h.d = nil
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !bytes.Contains(b, []byte(") Z")) {
			t.Errorf("tgtd %d still running after Stop", pid)
		}
	}
}

func (h *tgtHost) driver(t *testing.T, mgmt iscsi.Mgmt) *iscsi.Driver {
	t.Helper()
	d, err := iscsi.New(context.Background(), iscsi.Config{Dir: h.vols, Portal: h.portal, Mgmt: mgmt, Backend: iscsi.BackendFile})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// leftovers lists musubi's targets and accounts in the real tgtd and the
// files under the volumes' directory.
func (h *tgtHost) leftovers(t *testing.T) []string {
	t.Helper()
	left := leftFiles(t, h.vols)
	m := h.d.Mgmt()
	out, err := m.Do(context.Background(), iscsi.Request{Mode: iscsi.ModeTarget, Op: iscsi.OpShow})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := iscsi.ParseTargets(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range ts {
		left = append(left, "target "+tg.Name)
	}
	out, err = m.Do(context.Background(), iscsi.Request{Mode: iscsi.ModeAccount, Op: iscsi.OpShow})
	if err != nil {
		t.Fatal(err)
	}
	accts, err := iscsi.ParseAccounts(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accts {
		left = append(left, "account "+a)
	}
	return left
}

func TestIntegrationContract(t *testing.T) {
	needTgt(t)
	for _, transport := range []string{"socket", "tgtadm"} {
		t.Run(transport, func(t *testing.T) {
			provisiontest.TestVolumeDriver(t, func(t *testing.T) *provisiontest.VolumeHarness {
				h := startHost(t)
				mgmt := func() iscsi.Mgmt {
					if transport == "tgtadm" {
						return iscsi.Command{Runner: iscsi.ExecRunner{}, Base: h.d.SocketBase()}
					}
					return h.d.Mgmt()
				}
				return &provisiontest.VolumeHarness{
					Driver: h.driver(t, mgmt()), Image: writeImage(t, t.TempDir(), 8<<20), ImageSize: 8 << 20,
					Reopen:    func(t *testing.T) provision.VolumeDriver { return h.driver(t, mgmt()) },
					Leftovers: h.leftovers,
					RestartTarget: func(t *testing.T) {
						h.stop(t)
						h.start(t)
					},
				}
			})
		})
	}
}

// iscsiTool runs one of libiscsi's tools and returns its combined output.
func iscsiTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func lunURL(v provision.Volume, user, secret string) string {
	cred := ""
	if user != "" {
		cred = user + "%" + secret + "@"
	}
	return fmt.Sprintf("iscsi://%s%s/%s/%d", cred, v.Portal, v.Target, v.LUN)
}

// qemuIO runs qemu-io commands on the volume through QEMU's libiscsi
// driver, with the CHAP secret in a secret object read from a 0600 file
// (never on the command line).
func qemuIO(t *testing.T, v provision.Volume, initiator, secret string, cmds ...string) (string, error) {
	t.Helper()
	// A directory of its own without commas (QEMU's option syntax).
	dir, err := os.MkdirTemp("", "mchap")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sf := filepath.Join(dir, "chap.secret")
	if err := os.WriteFile(sf, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(v.Portal)
	args := []string{"--object", "secret,id=chap0,file=" + sf, "--image-opts",
		fmt.Sprintf("driver=iscsi,transport=tcp,portal=%s:%s,target=%s,lun=%d,initiator-name=%s,user=%s,password-secret=chap0",
			host, port, v.Target, v.LUN, initiator, v.CHAPUser)}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "qemu-io", args...).CombinedOutput()
	return string(out), err
}

func TestIntegrationLoginsAndData(t *testing.T) {
	needTgt(t, "iscsi-inq", "iscsi-readcapacity16", "qemu-io")
	h := startHost(t)
	d := h.driver(t, h.d.Mgmt())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const size = 64 << 20
	img := writeImage(t, t.TempDir(), size)
	const good = "iqn.2026-11.org.musubi:test:node-a"
	const other = "iqn.2026-11.org.musubi:test:node-b"
	v, err := d.Ensure(ctx, provision.VolumeSpec{VC: "vc1", Node: "n1", Image: img, InitiatorName: good})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("right CHAP and initiator", func(t *testing.T) {
		out, err := iscsiTool(t, "iscsi-inq", "-i", good, lunURL(v, v.CHAPUser, v.CHAPSecret))
		if err != nil || !strings.Contains(out, "Peripheral Device Type:DIRECT_ACCESS") {
			t.Fatalf("iscsi-inq: %v\n%s", err, out)
		}
		out, err = iscsiTool(t, "iscsi-readcapacity16", "-i", good, lunURL(v, v.CHAPUser, v.CHAPSecret))
		if want := fmt.Sprintf("RETURNED LOGICAL BLOCK ADDRESS:%d", size/512-1); err != nil || !strings.Contains(out, want) {
			t.Fatalf("iscsi-readcapacity16 (want %q): %v\n%s", want, err, out)
		}
	})
	t.Run("wrong secret refused", func(t *testing.T) {
		out, err := iscsiTool(t, "iscsi-inq", "-i", good, lunURL(v, v.CHAPUser, "WrongSecret0123456789xyz"))
		if err == nil || !strings.Contains(out, "Authentication failure") {
			t.Fatalf("login with a wrong secret: err %v\n%s", err, out)
		}
	})
	t.Run("no CHAP refused", func(t *testing.T) {
		out, err := iscsiTool(t, "iscsi-inq", "-i", good, lunURL(v, "", ""))
		if err == nil || !strings.Contains(out, "Login Failed") {
			t.Fatalf("login without CHAP: err %v\n%s", err, out)
		}
	})
	t.Run("other initiator refused", func(t *testing.T) {
		out, err := iscsiTool(t, "iscsi-inq", "-i", other, lunURL(v, v.CHAPUser, v.CHAPSecret))
		if err == nil || !strings.Contains(out, "Login Failed") {
			t.Fatalf("login from another initiator with the right secret: err %v\n%s", err, out)
		}
	})
	t.Run("marker written and read back; image untouched", func(t *testing.T) {
		out, err := qemuIO(t, v, good, v.CHAPSecret, "write -P 0x5a 1M 4k", "read -P 0x5a 1M 4k")
		if err != nil || !strings.Contains(out, "wrote 4096/4096") || !strings.Contains(out, "read 4096/4096") || strings.Contains(out, "Pattern verification failed") {
			t.Fatalf("qemu-io over iSCSI: %v\n%s", err, out)
		}
		got := readAt(t, v.Path, 1<<20, 4096)
		if !bytes.Equal(got, bytes.Repeat([]byte{0x5a}, 4096)) {
			t.Fatalf("the clone does not hold the marker at 1 MiB")
		}
		if orig := readAt(t, img, 1<<20, 4096); !bytes.Equal(orig, make([]byte, 4096)) {
			t.Fatal("the write reached the application image (not a copy)")
		}
		if head := readAt(t, v.Path, 0, 12); string(head) != "MUSUBI-IMAGE" {
			t.Fatalf("the clone does not start with the image's data: %q", head)
		}
		// The wrong secret cannot write either.
		if out, err := qemuIO(t, v, good, "WrongSecret0123456789xyz", "write -P 0x11 2M 4k"); err == nil {
			t.Fatalf("qemu-io with a wrong secret succeeded:\n%s", out)
		}
	})
	t.Run("rotated secret: old refused; new admitted", func(t *testing.T) {
		v2, err := d.Ensure(ctx, provision.VolumeSpec{VC: "vc1", Node: "n1", Image: img, InitiatorName: good})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := iscsiTool(t, "iscsi-inq", "-i", good, lunURL(v, v.CHAPUser, v.CHAPSecret)); err == nil {
			t.Fatalf("old secret still admitted after rotation:\n%s", out)
		}
		if out, err := iscsiTool(t, "iscsi-inq", "-i", good, lunURL(v2, v2.CHAPUser, v2.CHAPSecret)); err != nil {
			t.Fatalf("new secret refused: %v\n%s", err, out)
		}
		v = v2
	})
	t.Run("teardown leaves nothing", func(t *testing.T) {
		if err := d.Remove(ctx, v.Name); err != nil {
			t.Fatal(err)
		}
		if left := h.leftovers(t); len(left) != 0 {
			t.Fatalf("left after Remove: %v", left)
		}
		if out, err := iscsiTool(t, "iscsi-inq", "-i", good, lunURL(v, v.CHAPUser, v.CHAPSecret)); err == nil {
			t.Fatalf("login after Remove succeeded:\n%s", out)
		}
	})
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIntegrationDaemonAdoption: a second StartDaemon on the same
// directory (a restarted peer) adopts the running tgtd with its targets.
func TestIntegrationDaemonAdoption(t *testing.T) {
	needTgt(t)
	h := startHost(t)
	d := h.driver(t, h.d.Mgmt())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img := writeImage(t, t.TempDir(), 1<<20)
	if _, err := d.Ensure(ctx, provision.VolumeSpec{VC: "vc1", Node: "n1", Image: img, InitiatorName: "iqn.2026-11.org.musubi:test:a"}); err != nil {
		t.Fatal(err)
	}
	again, err := iscsi.StartDaemon(ctx, iscsi.DaemonConfig{Dir: filepath.Join(h.dir, "tgtd"), Portal: h.portal})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Adopted() || again.PID() != h.d.PID() {
		t.Fatalf("second StartDaemon: adopted %v pid %d, want the running %d", again.Adopted(), again.PID(), h.d.PID())
	}
	vs, err := h.driver(t, again.Mgmt()).List(ctx)
	if err != nil || len(vs) != 1 || !vs[0].Complete() {
		t.Fatalf("List through the adopted daemon: %+v %v", vs, err)
	}
	if err := d.Remove(ctx, "vc1/n1"); err != nil {
		t.Fatal(err)
	}
	// Stop through the adopted handle: it waits for the process to go.
	if err := again.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	h.d = nil
	if _, err := (iscsi.Socket{Path: iscsi.SocketPath(again.SocketBase(), 0)}).Do(ctx, iscsi.Request{Mode: iscsi.ModeSystem, Op: iscsi.OpShow}); err == nil {
		t.Fatal("tgtd still answers after Stop")
	}
}

// TestIntegrationPortalInUse: tgtd keeps running when its portal cannot be
// bound; StartDaemon must notice and fail.
func TestIntegrationPortalInUse(t *testing.T) {
	needTgt(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir, err := os.MkdirTemp("", "mtgt")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := iscsi.StartDaemon(ctx, iscsi.DaemonConfig{Dir: dir, Portal: l.Addr().String()})
	if err == nil {
		_ = d.Stop(ctx)
		t.Fatal("StartDaemon succeeded on a portal in use")
	}
	t.Logf("as expected: %v", err)
	if left := leftFiles(t, dir); slices.ContainsFunc(left, func(p string) bool { return strings.Contains(p, "tgtd.sock") }) {
		t.Fatalf("socket left: %v", left)
	}
}

// TestIntegrationDaemonAfterCrash: a tgtd killed with SIGKILL leaves its
// socket and lock files; the next StartDaemon on the directory must start a
// fresh tgtd anyway.
func TestIntegrationDaemonAfterCrash(t *testing.T) {
	needTgt(t)
	h := startHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old := h.d.PID()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Stop reaps the child (its socket no longer answers) and removes the
	// files; then put them back as a crash leaves them.
	sock := iscsi.SocketPath(h.d.SocketBase(), 0)
	if err := h.d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	h.d = nil
	for _, p := range []string{sock, sock + ".lock", filepath.Join(h.dir, "tgtd", "tgtd.pid")} {
		if err := os.WriteFile(p, []byte(fmt.Sprint(old)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.start(t)
	if h.d.Adopted() || h.d.PID() == old {
		t.Fatalf("StartDaemon adopted a dead tgtd (pid %d)", h.d.PID())
	}
	if _, err := h.d.Mgmt().Do(ctx, iscsi.Request{Mode: iscsi.ModeTarget, Op: iscsi.OpShow}); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationDaemonInNetns runs tgtd in a network namespace of its own
// (as each demo site does): its portal exists only there, its management
// socket is reachable from here, and logins from inside work.
func TestIntegrationDaemonInNetns(t *testing.T) {
	needTgt(t, "ip", "iscsi-inq")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ns := fmt.Sprintf("mtgt-%d", os.Getpid())
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del: %v %s", err, out)
		}
	})
	if out, err := exec.CommandContext(ctx, "ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	dir, err := os.MkdirTemp("", "mtgt")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	portal := "127.0.0.1:3260" // the namespace's own loopback: no clash with the host
	d, err := iscsi.StartDaemon(ctx, iscsi.DaemonConfig{Dir: filepath.Join(dir, "tgtd"), Portal: portal, Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := d.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	drv, err := iscsi.New(ctx, iscsi.Config{Dir: filepath.Join(dir, "vols"), Portal: portal, Mgmt: d.Mgmt()})
	if err != nil {
		t.Fatal(err)
	}
	const ini = "iqn.2026-11.org.musubi:test:ns"
	v, err := drv.Ensure(ctx, provision.VolumeSpec{VC: "vc1", Node: "n1", Image: writeImage(t, t.TempDir(), 1<<20), InitiatorName: ini})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "iscsi-inq", "-i", ini, lunURL(v, v.CHAPUser, v.CHAPSecret)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "DIRECT_ACCESS") {
		t.Fatalf("login inside the namespace: %v\n%s", err, out)
	}
	if err := drv.Remove(ctx, v.Name); err != nil {
		t.Fatal(err)
	}
}
