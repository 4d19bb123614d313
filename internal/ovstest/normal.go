package ovstest

import (
	"context"
	"fmt"
)

// BuildNormalMesh gives every site a bridge named bridge (userspace
// datapath, OVS's default NORMAL-action flow, standalone) with a GRE port
// "gre<j>" to every other site j. The ports are protected (split horizon:
// NORMAL never forwards tunnel to tunnel), so the full mesh has no loops and
// traffic between two sites only ever takes their direct link. It is the
// baseline that a controller's flows are compared against; attach
// endpoints with Endpoint.Attach.
func (f *Fabric) BuildNormalMesh(ctx context.Context, bridge string) error {
	sites := f.Sites()
	for _, s := range sites {
		args := []string{"--may-exist", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev"}
		for _, r := range sites {
			if r == s {
				continue
			}
			p := fmt.Sprintf("gre%d", r.Index)
			args = append(args, "--", "--may-exist", "add-port", bridge, p,
				"--", "set", "interface", p, "type=gre", "options:remote_ip="+r.Addr.Addr().String(),
				"--", "set", "port", p, "protected=true")
		}
		if _, err := s.Vsctl(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}
