// Package sitebootstrap brings a site into a federation, and takes it out,
// with re-runnable steps {Name, Check, Apply}: required Debian packages
// present, the federation token installed, this site's ZooKeeper server
// configured, running and a member of the ensemble, Open vSwitch and tgtd
// running, the site registered under sites/, and the peer's configuration
// file written. Every step checks before it acts, so running a command a
// second time changes nothing (Run reports how many steps it applied).
//
// The peer's configuration (<state>/musubi.json) is node/config's file, so
// 'musubi peer --config <state>/musubi.json' runs the site's peer. Site
// bootstrap owns its site, federation, gateway and zookeeper settings and
// those of the daemons it manages (the overlay's switch, the provisioner's
// tgtd: provision.tgt), and writes the federation
// credential beside it (<state>/zk.credential, mode 0600); everything else
// in the file (api, hosts, storage, log, ...) is the administrator's and a
// re-run keeps it.
//
// Init starts a new federation: a one-server ensemble that can grow
// (standaloneEnabled=false, reconfigEnabled=true). Join starts this site's
// server with the ensemble's current membership plus itself and adds it by
// incremental dynamic reconfiguration: a voter while the ensemble has fewer
// than coord.MaxVoters voters, an observer beyond. Leave deregisters the
// site, removes its server from the ensemble (the others keep serving) and
// stops its daemons.
//
// # The bootstrap token
//
// A federation has one secret, created by Init: the federation credential
// (digest user "musubi", 256 random bits), written as a token
// "musubi-token-1:<federation>:musubi:<secret>" to <state>/federation.token
// (mode 0600). An administrator copies that file to a new site and passes
// it to Join. The token is verified by the ensemble itself: the
// federation's root znode (/musubi/<federation>) carries a digest ACL for
// that credential only, so a join with a wrong token cannot read it and is
// refused before anything changes.
//
// Changing the ensemble's membership needs ZooKeeper's super identity
// (3.5.3+ refuses reconfiguration to anyone else unless skipACL=yes, which
// would switch off every ACL). The super identity is derived from the
// token: user "musubi-super" with password HMAC-SHA256(secret, "musubi
// zookeeper super identity v1"). Each server learns only its digest,
// through zoo.cfg (private directory), never through its command line.
// Peers keep using the federation credential, so ACLs still apply to
// them; only site bootstrap authenticates as super, for the
// reconfiguration itself.
//
// # Daemons
//
// Daemons run as detached background processes tracked by pid files
// (package proc) under the state directory, one set per site, so several
// sites can share one machine in network namespaces. On hosts with
// systemd, Config.Systemd also writes a unit file for the ZooKeeper server
// (same command line). Open vSwitch uses the kernel datapath when the
// openvswitch module is loaded or loadable and the userspace datapath
// (netdev) otherwise; the choice is written to the peer's configuration.
//
// The package takes its ZooKeeper sessions from a Dialer (cmd/musubi wires
// coord/zkstore) and runs external commands through a Runner, so its steps
// are tested on fakes.
package sitebootstrap
