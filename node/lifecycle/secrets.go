package lifecycle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/provision"
)

// Secrets keeps the volumes' CHAP secrets in files of mode 0600 under a
// directory of mode 0700: <Dir>/<vc>/<node>.chap (and a netns node's agent
// credentials in <node>.agent). A secret is written
// (atomically) as soon as the volume driver returns it and deleted with
// the volume; it never goes to ZooKeeper or to a log.
type Secrets struct {
	Dir string
}

const secretExt = ".chap"

func (s Secrets) path(vc, node string) string { return filepath.Join(s.Dir, vc, node+secretExt) }

func checkVolName(vc, node string) error {
	if err := coord.ValidName(vc); err != nil {
		return fmt.Errorf("lifecycle: secret: %w", err)
	}
	if err := coord.ValidName(node); err != nil {
		return fmt.Errorf("lifecycle: secret: %w", err)
	}
	return nil
}

// Load returns the secret of vc/node ("" when there is none or it is
// malformed: the driver then makes a new one).
func (s Secrets) Load(vc, node string) (string, error) {
	if err := checkVolName(vc, node); err != nil {
		return "", err
	}
	b, err := os.ReadFile(s.path(vc, node))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("lifecycle: secret of %s/%s: %w", vc, node, err)
	}
	sec := strings.TrimSpace(string(b))
	if !provision.ValidSecret(sec) {
		return "", nil
	}
	return sec, nil
}

// Save stores the secret of vc/node.
func (s Secrets) Save(vc, node, secret string) error {
	if err := checkVolName(vc, node); err != nil {
		return err
	}
	if !provision.ValidSecret(secret) {
		return fmt.Errorf("lifecycle: secret of %s/%s is malformed (%d characters)", vc, node, len(secret))
	}
	// No newline: the file is a QEMU secret object as is.
	return s.write(vc, node, s.path(vc, node), []byte(secret))
}

// SaveAgent stores the credentials file of vc/node's agent
// (vcacl.AgentSecret's file form) beside its CHAP secret, and returns its
// path. Delete removes it with the CHAP secret.
func (s Secrets) SaveAgent(vc, node string, data []byte) (string, error) {
	if err := checkVolName(vc, node); err != nil {
		return "", err
	}
	p := s.agentPath(vc, node)
	return p, s.write(vc, node, p, data)
}

func (s Secrets) agentPath(vc, node string) string { return filepath.Join(s.Dir, vc, node+agentExt) }

const agentExt = ".agent"

// write writes a file of mode 0600 atomically under the VC's directory.
func (s Secrets) write(vc, node, path string, data []byte) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("lifecycle: secrets: %w", err)
	}
	if err := os.Chmod(s.Dir, 0o700); err != nil {
		return fmt.Errorf("lifecycle: secrets: %w", err)
	}
	dir := filepath.Join(s.Dir, vc)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("lifecycle: secrets: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("lifecycle: secrets: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lifecycle: secret of %s/%s: %w", vc, node, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lifecycle: secret of %s/%s: %w", vc, node, err)
	}
	return nil
}

// Delete removes the secret of vc/node, and the VC's directory once empty.
func (s Secrets) Delete(vc, node string) error {
	if err := checkVolName(vc, node); err != nil {
		return err
	}
	for _, p := range []string{s.path(vc, node), s.agentPath(vc, node)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lifecycle: secret of %s/%s: %w", vc, node, err)
		}
	}
	s.removeVCDir(vc)
	return nil
}

// removeVCDir removes the VC's directory with its stale temporary files
// if nothing else is left in it.
func (s Secrets) removeVCDir(vc string) {
	dir := filepath.Join(s.Dir, vc)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			return
		}
	}
	for _, e := range ents {
		os.Remove(filepath.Join(dir, e.Name()))
	}
	os.Remove(dir)
}

// List returns the "<vc>/<node>" names that have a secret, sorted.
func (s Secrets) List() ([]string, error) {
	vcs, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lifecycle: secrets: %w", err)
	}
	var out []string
	for _, v := range vcs {
		if !v.IsDir() || coord.ValidName(v.Name()) != nil {
			continue
		}
		files, err := os.ReadDir(filepath.Join(s.Dir, v.Name()))
		if err != nil {
			return nil, fmt.Errorf("lifecycle: secrets: %w", err)
		}
		for _, f := range files {
			node, ok := strings.CutSuffix(f.Name(), secretExt)
			if !ok {
				node, ok = strings.CutSuffix(f.Name(), agentExt)
			}
			if ok && coord.ValidName(node) == nil && !slices.Contains(out, v.Name()+"/"+node) {
				out = append(out, v.Name()+"/"+node)
			}
		}
		if len(files) == 0 {
			// An empty VC directory left by an interrupted Delete.
			out = append(out, v.Name()+"/")
		}
	}
	sort.Strings(out)
	return out, nil
}
