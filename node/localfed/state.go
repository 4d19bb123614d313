package localfed

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// stateVersion is the format of local.json.
const stateVersion = 1

// Phases of a federation.
const (
	PhaseBuilding = "building" // Up is making it (or crashed while it did)
	PhaseUp       = "up"       // Up finished: every peer was ready
	PhaseFailed   = "failed"   // Up failed and kept what it made (--keep)
)

// State is everything a local federation is made of, as <dir>/local.json
// records it. Up records each thing before it makes it, so that Down can
// remove it after any failure; a thing recorded but never made is simply
// not found by Down.
type State struct {
	Version    int    `json:"version"`
	Dir        string `json:"dir"`
	Federation string `json:"federation"`
	// Backend is the virtual node backend of the sites' provisioners.
	Backend string `json:"backend"`
	Phase   string `json:"phase"`
	// Created is when Up started.
	Created time.Time `json:"created"`
	// CreatedDir: Up created Dir, so Down removes it as a whole.
	CreatedDir bool `json:"created_dir,omitempty"`
	// WANDelay is the one-way delay asked for; DelayApplied whether the
	// links have it, DelayNote why not.
	WANDelay     string `json:"wan_delay"`
	DelayApplied bool   `json:"delay_applied,omitempty"`
	DelayNote    string `json:"delay_note,omitempty"`
	APIPort      int    `json:"api_port"`
	// Transit is the transit namespace ("" until Up makes it).
	Transit string `json:"transit_netns,omitempty"`
	// HostLink is the host's veth into the transit and its route ("" until
	// Up makes them).
	HostLink  string `json:"host_link,omitempty"`
	HostRoute string `json:"host_route,omitempty"`
	// NodeNetnsPrefix starts the provisioner's node namespaces; Down
	// removes those that belong to this federation's sites.
	NodeNetnsPrefix string `json:"node_netns_prefix"`
	// TokenFile holds the admin API token; TokensFile the peers' tokens
	// file (its hash).
	TokenFile  string `json:"token_file"`
	TokensFile string `json:"tokens_file"`
	// Sites are the sites Up has started to make, in order.
	Sites []Site `json:"sites"`
}

// Site is one site of a local federation.
type Site struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	// Netns is the site's namespace; Dir its state directory.
	Netns string `json:"netns"`
	Dir   string `json:"dir"`
	// Addr is the site's address with its prefix; Gateway the transit's
	// end of its link, named TransitIface there.
	Addr         string `json:"addr"`
	Gateway      string `json:"gateway"`
	TransitIface string `json:"transit_iface"`
	// Link: the WAN link was (being) made.
	Link bool `json:"link,omitempty"`
	// Bootstrap is "" (not yet), "started" or "done" (site init/join).
	Bootstrap string `json:"bootstrap,omitempty"`
	// Phy: the address was (being) moved onto br-phy.
	Phy bool `json:"phy,omitempty"`
	// API is the peer's API and web UI; Socket its unix socket.
	API    string `json:"api"`
	Socket string `json:"socket"`
	// PeerConfig is the peer's configuration (site bootstrap's musubi.json).
	PeerConfig string `json:"peer_config"`
	PeerLog    string `json:"peer_log"`
	BootLog    string `json:"bootstrap_log"`
	// Peer is the peer process (recorded before it starts, with its PID
	// and start time once it runs).
	Peer *Proc `json:"peer,omitempty"`
}

// Proc is a process Up started: its command line, and its PID and start
// time (clock ticks since boot) once it runs. PID and start time together
// name it: a recycled PID has another start time.
type Proc struct {
	Argv  []string `json:"argv"`
	PID   int      `json:"pid,omitempty"`
	Start string   `json:"start,omitempty"`
}

// NodePrefix starts the namespaces of site s's netns nodes: the
// federation's NodeNetnsPrefix and the site's name, so that no site's
// provisioner takes another's nodes for its own leftovers (they share this
// host's namespaces).
func (st *State) NodePrefix(s Site) string { return st.NodeNetnsPrefix + s.Name + "-" }

// StatePath is the state file of directory dir.
func StatePath(dir string) string { return filepath.Join(dir, StateFile) }

// Load reads <dir>/local.json (ErrNoFederation when there is none).
func Load(dir string) (State, error) {
	var st State
	b, err := os.ReadFile(StatePath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("%w in %s (no %s)", ErrNoFederation, dir, StateFile)
	}
	if err != nil {
		return st, fmt.Errorf("localfed: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("localfed: %s: %w (it records what to remove: repair it, or remove the federation's namespaces by hand)", StatePath(dir), err)
	}
	if st.Version != stateVersion {
		return st, fmt.Errorf("localfed: %s has format %d, this musubi reads %d: use the musubi that made it", StatePath(dir), st.Version, stateVersion)
	}
	return st, nil
}

// Save writes the state atomically (a temporary file renamed into place),
// mode 0644: it holds no secret, only the token file's name.
func (st *State) Save() error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("localfed: %w", err)
	}
	path := StatePath(st.Dir)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("localfed: record %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("localfed: record %s: %w", path, err), os.Remove(tmp))
	}
	return nil
}

// Site returns the recorded site with that name.
func (st *State) Site(name string) (*Site, error) {
	for i := range st.Sites {
		if st.Sites[i].Name == name {
			return &st.Sites[i], nil
		}
	}
	names := make([]string, 0, len(st.Sites))
	for _, s := range st.Sites {
		names = append(names, s.Name)
	}
	return nil, fmt.Errorf("%w: %q (the federation in %s has %v)", ErrNoSite, name, st.Dir, names)
}

// Namespaces are the namespaces the state records (sites, then the
// transit).
func (st *State) Namespaces() []string {
	var out []string
	for _, s := range st.Sites {
		out = append(out, s.Netns)
	}
	if st.Transit != "" {
		out = append(out, st.Transit)
	}
	return out
}

// ownsNetns reports whether ns is one of the state's site or transit
// namespaces.
func (st *State) ownsNetns(ns string) bool { return slices.Contains(st.Namespaces(), ns) }

// lock is an exclusive lock on a federation's directory: one `musubi local`
// command that changes it at a time. A crashed command's lock goes with
// its process.
type lock struct{ fd int }

func lockDir(dir string) (*lock, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("localfed: %s: %w", dir, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: another 'musubi local up' or 'down' works on %s: wait for it to finish, or interrupt it (it cleans up after itself)", ErrBusy, dir)
		}
		return nil, fmt.Errorf("localfed: lock %s: %w", dir, err)
	}
	return &lock{fd: fd}, nil
}

func (l *lock) release() {
	if l != nil && l.fd >= 0 {
		_ = unix.Flock(l.fd, unix.LOCK_UN)
		_ = unix.Close(l.fd)
		l.fd = -1
	}
}
