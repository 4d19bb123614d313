package node

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord/memstore"
)

func TestRegisterSiteAndStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := memstore.New()
	a, b := srv.Connect(), srv.Connect()
	defer a.Close()
	defer b.Close()
	for _, s := range []*memstore.Store{a, b} {
		if err := InitSchema(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	if err := RegisterSite(ctx, a, SiteRecord{Name: "alpha", ZKServer: "10.0.0.1:2181", Joined: now}, LiveRecord{Peer: "pa", Since: now}); err != nil {
		t.Fatal(err)
	}
	if err := RegisterSite(ctx, b, SiteRecord{Name: "beta", Joined: now}, LiveRecord{Peer: "pb", Since: now}); err != nil {
		t.Fatal(err)
	}
	// Registering again on the same session is a no-op for live/.
	if err := RegisterSite(ctx, a, SiteRecord{Name: "alpha", ZKServer: "10.0.0.1:2182", Joined: now}, LiveRecord{Peer: "pa", Since: now}); err != nil {
		t.Fatalf("re-register: %v", err)
	}
	if err := RegisterSite(ctx, a, SiteRecord{Name: "bad/name"}, LiveRecord{}); err == nil {
		t.Error("a site name with '/' was accepted")
	}
	st, err := ReadStatus(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sites) != 2 || st.Sites[0].Name != "alpha" || !st.Sites[0].Live || st.Sites[0].ZKServer != "10.0.0.1:2182" {
		t.Fatalf("status = %+v", st)
	}
	// A site whose peer session ends is shown down, its config kept.
	a.Close()
	st, err = ReadStatus(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sites[0].Live || !st.Sites[1].Live {
		t.Fatalf("after alpha's session closed: %+v", st)
	}
	var buf bytes.Buffer
	if err := st.WriteTable(&buf, "", nil); err != nil {
		t.Fatal(err)
	}
	want := "SITE   STATE  ZK SERVER      PEER  LIVE SINCE\nalpha  down   10.0.0.1:2182  -     -\nbeta   live                  pb    2026-11-22T01:02:03Z\n"
	if buf.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", buf.String(), want)
	}
	// A stale live record of a dead session is replaced by a new peer.
	c := srv.Connect()
	defer c.Close()
	stale := srv.Connect()
	if err := RegisterSite(ctx, stale, SiteRecord{Name: "gamma"}, LiveRecord{Peer: "old"}); err != nil {
		t.Fatal(err)
	}
	if err := RegisterSite(ctx, c, SiteRecord{Name: "gamma"}, LiveRecord{Peer: "new"}); err != nil {
		t.Fatal(err)
	}
	data, st2, err := c.Get(ctx, "/live/gamma")
	if err != nil || !strings.Contains(string(data), `"new"`) || st2.EphemeralOwner != c.SessionID() {
		t.Errorf("live/gamma = %s (owner %x, want %x), %v", data, st2.EphemeralOwner, c.SessionID(), err)
	}
	stale.Close()
}
