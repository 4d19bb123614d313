// Package nodedir keeps the node backends' state on disk: one directory per
// node, "<root>/<vc>/<node>", holding a JSON record written atomically and
// the node's files (logs, sockets, pid files), plus per-node locks for the
// calls of one process.
package nodedir

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// RecordFile is the name of a node's record in its directory.
const RecordFile = "state.json"

// Dir is the state root of one backend.
type Dir struct {
	Root string

	mu    sync.Mutex
	locks map[string]*lockEntry
}

type lockEntry struct {
	mu   sync.Mutex
	refs int
}

// New returns the state root at root, creating it (0700).
func New(root string) (*Dir, error) {
	if root == "" || !filepath.IsAbs(root) {
		return nil, fmt.Errorf("nodedir: state directory %q is not absolute", root)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("nodedir: %w", err)
	}
	return &Dir{Root: root, locks: map[string]*lockEntry{}}, nil
}

// Lock serialises the calls on one node within this process; call the
// returned function to unlock.
func (d *Dir) Lock(vc, node string) func() {
	key := vc + "/" + node
	d.mu.Lock()
	e := d.locks[key]
	if e == nil {
		e = &lockEntry{}
		d.locks[key] = e
	}
	e.refs++
	d.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		d.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(d.locks, key)
		}
		d.mu.Unlock()
	}
}

// NodeDir is the directory of a node (not created).
func (d *Dir) NodeDir(vc, node string) string { return filepath.Join(d.Root, vc, node) }

// Path is a file of a node's directory.
func (d *Dir) Path(vc, node, file string) string { return filepath.Join(d.Root, vc, node, file) }

// PublicDir holds the sockets users of the nodes reach (PublicSocketPath):
// mode 0711 like the root, so anyone can open a socket whose name they
// know, and nobody can list them or read the nodes' directories (0700).
const PublicDir = "pub"

// PublicSocketPath is a unix socket of the node that its users open (the
// agent's, for qsub): under Root/pub, named after the node, or a hash
// when the path would not fit in sun_path. EnsurePublic makes the
// directory.
func (d *Dir) PublicSocketPath(vc, node, file string) string {
	p := filepath.Join(d.Root, PublicDir, vc+"+"+node+"-"+file)
	if len(p) <= 100 {
		return p
	}
	sum := sha256.Sum256([]byte(vc + "/" + node + "/" + file))
	return filepath.Join(d.Root, PublicDir, "s-"+hex.EncodeToString(sum[:8]))
}

// PublicPath is a file or directory of the node under Root/pub that its
// users must reach by name (the agent's spool: job scripts run as their
// users), "<vc>+<node>-<file>".
func (d *Dir) PublicPath(vc, node, file string) string {
	return filepath.Join(d.Root, PublicDir, vc+"+"+node+"-"+file)
}

// EnsurePublic makes Root and Root/pub traversable by everyone (0711):
// the nodes' own directories stay 0700.
func (d *Dir) EnsurePublic() error {
	for _, p := range []string{d.Root, filepath.Join(d.Root, PublicDir)} {
		if err := os.MkdirAll(p, 0o711); err != nil {
			return fmt.Errorf("nodedir: %w", err)
		}
		if err := os.Chmod(p, 0o711); err != nil {
			return fmt.Errorf("nodedir: %w", err)
		}
	}
	return nil
}

// SocketPath is a unix socket of the node: in its directory when the path
// fits the 107 bytes of sun_path, otherwise in the root under a hash.
func (d *Dir) SocketPath(vc, node, file string) string {
	p := d.Path(vc, node, file)
	if len(p) <= 100 {
		return p
	}
	sum := sha256.Sum256([]byte(vc + "/" + node + "/" + file))
	return filepath.Join(d.Root, "s-"+hex.EncodeToString(sum[:8]))
}

// Create makes the node's directory (0700).
func (d *Dir) Create(vc, node string) error {
	if err := os.MkdirAll(d.NodeDir(vc, node), 0o700); err != nil {
		return fmt.Errorf("nodedir: %w", err)
	}
	return nil
}

// Save writes the node's record atomically.
func (d *Dir) Save(vc, node string, rec any) error {
	if err := d.Create(vc, node); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("nodedir: %w", err)
	}
	p := d.Path(vc, node, RecordFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("nodedir: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("nodedir: %w", err)
	}
	return nil
}

// Load reads the node's record into rec; found is false when there is none.
func (d *Dir) Load(vc, node string, rec any) (found bool, err error) {
	b, err := os.ReadFile(d.Path(vc, node, RecordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("nodedir: %w", err)
	}
	if err := json.Unmarshal(b, rec); err != nil {
		return false, fmt.Errorf("nodedir: %s/%s: %w", vc, node, err)
	}
	return true, nil
}

// Remove deletes the node's directory (and its hashed sockets) and the VC's
// directory when it is left empty.
func (d *Dir) Remove(vc, node string, sockets ...string) error {
	var errs []error
	for _, s := range sockets {
		if p := d.SocketPath(vc, node, s); filepath.Dir(p) == d.Root {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := os.RemoveAll(d.NodeDir(vc, node)); err != nil {
		errs = append(errs, err)
	}
	// Fails harmlessly when other nodes of the VC remain.
	_ = os.Remove(filepath.Join(d.Root, vc))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nodedir: %w", err)
	}
	return nil
}

// Nodes lists the nodes that have a directory, as [vc, node] pairs sorted.
func (d *Dir) Nodes() ([][2]string, error) {
	vcs, err := os.ReadDir(d.Root)
	if err != nil {
		return nil, fmt.Errorf("nodedir: %w", err)
	}
	var out [][2]string
	for _, v := range vcs {
		if !v.IsDir() || v.Name() == PublicDir {
			continue
		}
		nodes, err := os.ReadDir(filepath.Join(d.Root, v.Name()))
		if err != nil {
			return nil, fmt.Errorf("nodedir: %w", err)
		}
		for _, n := range nodes {
			if n.IsDir() {
				out = append(out, [2]string{v.Name(), n.Name()})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i][0] != out[j][0] {
			return out[i][0] < out[j][0]
		}
		return out[i][1] < out[j][1]
	})
	return out, nil
}
