// Package localfed is `musubi local up|status|exec|down`: a federation of
// several sites on one Linux machine, each site a network namespace with
// its own ZooKeeper server, Open vSwitch, tgtd and peer, brought up with
// the same commands an administrator runs on a real site.
//
// # Layout
//
// For a federation in directory D (default /var/lib/musubi-local) with N
// sites (default 3):
//
//	mlocal-wan   transit namespace: routes between the sites' WAN links
//	             (internal/sitenet: site i's link is 10.200.i.0/24, the
//	             transit at .1); with --wan-delay, a netem qdisc on each
//	             link (when the kernel has sch_netem; otherwise Up says the
//	             delay is not available and goes on)
//	mlocal-s<i>  site s<i>: its WAN veth wan0, then (once site bootstrap has
//	             started Open vSwitch) the br-phy layout userspace GRE needs,
//	             address 10.200.i.2/24 on br-phy, default route via the
//	             transit
//	mlocal-h     host end of a veth into the transit (10.200.0.2/24, the
//	             transit at 10.200.0.1) and the host route 10.200.0.0/16 via
//	             it: the host reaches every site's address
//	D/s<i>       site s<i>'s state directory (site bootstrap's: ZooKeeper,
//	             OVS, tgtd, musubi.json), its peer's log (peer.log), API
//	             socket (peer.sock) and provisioner state (prov/)
//	D/local.json everything Up made (see State)
//
// Namespaces are named "mlocal-...", never "musubi-...": the provisioner's
// node namespaces start with "musubi-" (node/provision/vm/netns).
//
// # Bring-up
//
// Up runs, for the first site, `ip netns exec mlocal-s1 musubi site init
// --site s1 --addr 10.200.1.2 --state-dir D/s1 ...` and for each other
// site `musubi site join --site s<i> --addr 10.200.i.2 --seed
// 10.200.1.2:2181 --token-file D/s1/federation.token --state-dir D/s<i>`
// in its namespace, one after the other; after each, the site's address
// moves from wan0 onto br-phy (its daemons keep serving). Then it adds to
// each site's musubi.json (which site bootstrap wrote, and keeps these on
// re-runs) what an administrator would: the API settings, every site's
// ZooKeeper server, one compute and one storage host, and the provisioner
// with the --backend chosen (netns or qemu; its state in D/s<i>/prov).
// It starts `musubi peer --config D/s<i>/musubi.json` in each namespace, a
// process in its own session logging to D/s<i>/peer.log, recorded by PID
// and start time, and waits for every peer's /readyz.
//
// # Reaching the API and the web UI
//
// Each peer's API listens on its site's WAN address, port 7080 (plain HTTP:
// the address is reachable only from this machine, through the host veth
// and route above; every request needs the admin token Up prints, kept in
// D/admin.token), and on the unix socket D/s<i>/peer.sock (root needs no
// token). The web UI is at http://10.200.<i>.2:7080/ from a browser on
// this machine; from elsewhere, forward a port with ssh -L.
//
// # Recovery
//
// Up records each thing in D/local.json before it makes it (namespaces,
// links, the host route, bootstrapped sites, peer processes with their PID
// and start time), so Down can take everything away after a crashed or
// interrupted Up, and a second Down finds nothing left to do. Down stops
// the peers (only the recorded processes, or processes whose command line
// names a site's musubi.json), stops each site's daemons with `musubi site
// stop`, stops what still runs in the federation's namespaces, deletes the
// node namespaces the federation's peers made (those with the provisioner's
// prefix whose veth ends in one of the sites, or whose processes name D),
// the site and transit namespaces, the host veth and route, and D.
// Commands on one directory are serialised by a lock on it.
package localfed
