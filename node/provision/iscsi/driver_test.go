package iscsi_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/iscsi"
	"github.com/musubi-fabric/musubi/node/provision/iscsi/iscsitest"
)

func newFakeDriver(t *testing.T, logs *bytes.Buffer) (*iscsi.Driver, *iscsitest.FakeTgt, string) {
	t.Helper()
	tgt := iscsitest.NewFakeTgt()
	dir := filepath.Join(t.TempDir(), "vols")
	cfg := iscsi.Config{Dir: dir, Portal: "192.0.2.10:3260", Mgmt: tgt, Backend: iscsi.BackendFile}
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d, err := iscsi.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d, tgt, dir
}

// TestEnsureRequestOrder checks the whole sequence of tgt requests (the
// Tailscale-style dump): the ACL, which opens the target, comes last; a
// secret change closes it first; a repeated Ensure changes nothing.
func TestEnsureRequestOrder(t *testing.T) {
	var logs bytes.Buffer
	d, tgt, dir := newFakeDriver(t, &logs)
	ctx := context.Background()
	img := writeImage(t, t.TempDir(), 1<<20)
	spec := provision.VolumeSpec{VC: "vc1", Node: "n1", Image: img, InitiatorName: "iqn.2026-11.org.musubi:init:n1"}
	v, err := d.Ensure(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vc1", "n1.img")
	want := []string{
		"tgtadm --lld iscsi --mode target --op new --tid 1 --targetname iqn.2026-11.org.musubi:vc1:n1",
		"tgtadm --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 --backing-store " + path + " --bstype rdwr",
		"tgtadm --lld iscsi --mode account --op new --user musubi:vc1:n1 --password <redacted>",
		"tgtadm --lld iscsi --mode account --op bind --tid 1 --user musubi:vc1:n1",
		"tgtadm --lld iscsi --mode target --op bind --tid 1 --initiator-name iqn.2026-11.org.musubi:init:n1",
	}
	if got := tgt.Requests(); !reflect.DeepEqual(got, want) {
		t.Fatalf("first Ensure:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p, _ := tgt.Password("musubi:vc1:n1"); p != v.CHAPSecret {
		t.Fatal("the account's secret is not the one Ensure returned")
	}
	spec.CHAPSecret = v.CHAPSecret
	if _, err := d.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got := tgt.Requests(); len(got) != 0 {
		t.Fatalf("repeated Ensure sent %q", got)
	}
	spec.CHAPSecret = ""
	v2, err := d.Ensure(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		"tgtadm --lld iscsi --mode target --op unbind --tid 1 --initiator-name iqn.2026-11.org.musubi:init:n1",
		"tgtadm --lld iscsi --mode account --op delete --user musubi:vc1:n1",
		"tgtadm --lld iscsi --mode account --op new --user musubi:vc1:n1 --password <redacted>",
		"tgtadm --lld iscsi --mode account --op bind --tid 1 --user musubi:vc1:n1",
		"tgtadm --lld iscsi --mode target --op bind --tid 1 --initiator-name iqn.2026-11.org.musubi:init:n1",
	}
	if got := tgt.Requests(); !reflect.DeepEqual(got, want) {
		t.Fatalf("rotation:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := d.Remove(ctx, v.Name); err != nil {
		t.Fatal(err)
	}
	want = []string{
		"tgtadm --lld iscsi --mode target --op unbind --tid 1 --initiator-name iqn.2026-11.org.musubi:init:n1",
		"tgtadm --lld iscsi --mode target --op delete --tid 1 --force",
		"tgtadm --lld iscsi --mode account --op delete --user musubi:vc1:n1",
	}
	if got := tgt.Requests(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Remove:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// No secret reached the logs, at debug level.
	for _, s := range []string{v.CHAPSecret, v2.CHAPSecret} {
		if strings.Contains(logs.String(), s) {
			t.Fatal("a CHAP secret was logged")
		}
	}
	if !strings.Contains(logs.String(), "<redacted>") {
		t.Fatalf("debug logs do not show the (redacted) account request:\n%s", logs.String())
	}
	// The state file holds a digest, not the secret.
	metas, _ := filepath.Glob(filepath.Join(dir, "*", "*.json"))
	for _, m := range metas {
		b, _ := os.ReadFile(m)
		if bytes.Contains(b, []byte(v2.CHAPSecret)) {
			t.Fatalf("%s holds the secret", m)
		}
	}
}

// A clone made again under an existing target (someone deleted the file)
// gets a new LUN: tgtd would keep serving the deleted file.
func TestRecloneReplacesLUN(t *testing.T) {
	d, tgt, dir := newFakeDriver(t, nil)
	ctx := context.Background()
	spec := provision.VolumeSpec{VC: "vc1", Node: "n1", Image: writeImage(t, t.TempDir(), 1<<20), InitiatorName: "iqn.2026-11.org.musubi:i"}
	v, err := d.Ensure(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "vc1", "n1.img")); err != nil {
		t.Fatal(err)
	}
	vs, err := d.List(ctx)
	if err != nil || len(vs) != 1 || !reflect.DeepEqual(vs[0].Problems, []string{"no clone"}) {
		t.Fatalf("List after the clone vanished: %+v %v", vs, err)
	}
	tgt.Requests()
	spec.CHAPSecret = v.CHAPSecret
	if _, err := d.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(tgt.Requests(), "\n")
	if !strings.Contains(got, "--mode logicalunit --op delete --tid 1 --lun 1") || !strings.Contains(got, "--mode logicalunit --op new --tid 1 --lun 1") {
		t.Fatalf("requests:\n%s", got)
	}
}

func TestForeignTargetsUntouched(t *testing.T) {
	d, tgt, _ := newFakeDriver(t, nil)
	ctx := context.Background()
	for _, r := range []iscsi.Request{
		{Mode: iscsi.ModeTarget, Op: iscsi.OpNew, TID: 1, TargetName: "iqn.2001-04.com.example:disk1"},
		{Mode: iscsi.ModeAccount, Op: iscsi.OpNew, User: "admin", Password: "x123456789012"},
	} {
		if _, err := tgt.Do(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	v, err := d.Ensure(ctx, provision.VolumeSpec{VC: "vc1", Node: "n1", Image: writeImage(t, t.TempDir(), 1<<20), InitiatorName: "iqn.2026-11.org.musubi:i"})
	if err != nil {
		t.Fatal(err)
	}
	if vs, err := d.List(ctx); err != nil || len(vs) != 1 || vs[0].Name != "vc1/n1" {
		t.Fatalf("List: %+v %v", vs, err)
	}
	if err := d.Remove(ctx, v.Name); err != nil {
		t.Fatal(err)
	}
	out, _ := tgt.Do(ctx, iscsi.Request{Mode: iscsi.ModeTarget, Op: iscsi.OpShow})
	accts, _ := tgt.Do(ctx, iscsi.Request{Mode: iscsi.ModeAccount, Op: iscsi.OpShow})
	if !strings.Contains(out, "Target 1: iqn.2001-04.com.example:disk1") || !strings.Contains(accts, "admin") {
		t.Fatalf("foreign objects touched:\n%s\n%s", out, accts)
	}
}

func TestUnavailableTgtd(t *testing.T) {
	d, err := iscsi.New(context.Background(), iscsi.Config{Dir: t.TempDir(), Portal: "127.0.0.1:3260",
		Mgmt: iscsi.Socket{Path: filepath.Join(t.TempDir(), "none.0")}, Backend: iscsi.BackendFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.List(context.Background()); !errors.Is(err, provision.ErrUnavailable) {
		t.Fatalf("List without tgtd: %v, want provision.ErrUnavailable", err)
	}
	_, err = d.Ensure(context.Background(), provision.VolumeSpec{VC: "v", Node: "n", Image: writeImage(t, t.TempDir(), 4096), InitiatorName: "iqn.a.b"})
	if !errors.Is(err, provision.ErrUnavailable) {
		t.Fatalf("Ensure without tgtd: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []iscsi.Config{
		{Dir: "rel", Portal: "127.0.0.1:3260", Mgmt: iscsitest.NewFakeTgt()},
		{Dir: "/tmp/x", Portal: "", Mgmt: iscsitest.NewFakeTgt()},
		{Dir: "/tmp/x", Portal: "host:port", Mgmt: iscsitest.NewFakeTgt()},
		{Dir: "/tmp/x", Portal: "127.0.0.1:3260"},
	} {
		if _, err := iscsi.New(ctx, cfg); !errors.Is(err, iscsi.ErrConfig) {
			t.Errorf("New(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
	for _, cfg := range []iscsi.DaemonConfig{{Dir: "rel", Portal: "127.0.0.1:3260"}, {Dir: "/tmp/x", Portal: "x"},
		{Dir: "/tmp/" + strings.Repeat("d", 100), Portal: "127.0.0.1:3260"}} {
		if _, err := iscsi.StartDaemon(ctx, cfg); !errors.Is(err, iscsi.ErrConfig) {
			t.Errorf("StartDaemon(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
}

// A partial copy left by a crash shows as an incomplete clone; Ensure
// replaces it, and a complete clone beside a leftover part wins.
func TestPartialCloneLeftover(t *testing.T) {
	d, _, dir := newFakeDriver(t, nil)
	ctx := context.Background()
	if err := os.MkdirAll(filepath.Join(dir, "vc1"), 0o700); err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(dir, "vc1", "n1.img.part")
	if err := os.WriteFile(part, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	vs, err := d.List(ctx)
	if err != nil || len(vs) != 1 || !strings.Contains(strings.Join(vs[0].Problems, ","), "clone incomplete") {
		t.Fatalf("List with a partial clone: %+v %v", vs, err)
	}
	spec := provision.VolumeSpec{VC: "vc1", Node: "n1", Image: writeImage(t, t.TempDir(), 1<<20), InitiatorName: "iqn.2026-11.org.musubi:i"}
	if _, err := d.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Fatalf("partial copy still there: %v", err)
	}
	if err := os.WriteFile(part, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	vs, err = d.List(ctx)
	if err != nil || len(vs) != 1 || !vs[0].Complete() {
		t.Fatalf("List with a complete clone and a leftover part: %+v %v", vs, err)
	}
	if err := d.Remove(ctx, "vc1/n1"); err != nil {
		t.Fatal(err)
	}
	if left := leftFiles(t, dir); len(left) != 0 {
		t.Fatalf("left: %v", left)
	}
}
