package peer_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/peer"
)

// The provisioner runs as a peer subsystem: it is ready once its
// reconciler runs, watches reservations/, and stops with the peer.
func TestLifecyclePluginRunsAndStops(t *testing.T) {
	cfg := baseConfig(t)
	dir := t.TempDir()
	r := start(t, cfg, peer.LifecyclePlugin(peer.LifecycleOptions{
		StateDir:  filepath.Join(dir, "prov"),
		ImagesDir: filepath.Join(dir, "images"),
		Tgt:       map[string]peer.TgtEndpoint{"": {Socket: filepath.Join(dir, "tgtd.sock.0"), Portal: "127.0.0.1:3260"}},
	}))
	eventually(t, "the lifecycle subsystem ready", func() bool {
		for _, p := range r.p.Problems() {
			if strings.HasPrefix(p, "lifecycle") {
				return false
			}
		}
		return true
	})
	st := r.store.Load()
	eventually(t, "a watch on reservations/", func() bool {
		ok, _, err := st.Exists(context.Background(), coord.ReservationsDir)
		return err == nil && ok
	})
	if err := r.shutdown(t); err != nil {
		t.Fatalf("peer: %v", err)
	}
}

// A storage host without a tgtd to drive is a configuration error: the
// subsystem fails and stops the peer.
func TestLifecyclePluginNeedsTgt(t *testing.T) {
	cfg := baseConfig(t)
	r := start(t, cfg, peer.LifecyclePlugin(peer.LifecycleOptions{StateDir: t.TempDir()}))
	select {
	case err := <-r.done:
		r.done <- err
		if err == nil || !strings.Contains(err.Error(), "no tgtd configured for storage host s1-st1") {
			t.Fatalf("peer stopped with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the peer kept running")
	}
}
