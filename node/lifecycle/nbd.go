package lifecycle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/node/provision/vm"
)

// NBDConfig configures an NBDAttacher.
type NBDConfig struct {
	// Dir holds one directory per attachment (absolute; keep it short:
	// the NBD sockets live there and unix socket paths are limited to
	// 107 bytes).
	Dir string
	// Netns is the namespace the daemons run in: where the storage
	// hosts' portals are reachable ("" for the peer's own).
	Netns string
	// Runner starts and watches the daemons (default vm.ExecRunner{}).
	Runner vm.Runner
	// Program is the daemon (default "qemu-storage-daemon").
	Program string
	// StartTimeout bounds the wait for a daemon's socket (default 15 s).
	StartTimeout time.Duration
	// Logger receives progress (default: discard).
	Logger *slog.Logger
}

// NBDAttacher attaches a volume to a node with one qemu-storage-daemon
// per attachment: it logs in to the iSCSI target through QEMU's libiscsi
// (CHAP, the secret read by a secret object from a 0600 file that is
// deleted once the daemon serves) and exports the logical unit over NBD on
// a unix socket in the attachment's directory, which the node reaches
// through the file system from inside its own network namespace. The
// daemon is detached (its own session): it survives a restart of the
// peer, which finds it again by its PID, start time and command line.
type NBDAttacher struct {
	cfg NBDConfig
	log *slog.Logger

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

var _ Attacher = (*NBDAttacher)(nil)

// Files of an attachment's directory.
const (
	nbdState  = "attach.json"
	nbdSocket = "nbd.sock"
	nbdPID    = "qsd.pid"
	nbdLog    = "qsd.log"
	nbdSecret = "chap.secret"
	nbdExport = "disk"
)

// nbdRecord is an attachment's state file.
type nbdRecord struct {
	VC, Node string
	SpecHash string
	Proc     vm.Proc
}

// NewNBDAttacher checks cfg and creates its directory.
func NewNBDAttacher(cfg NBDConfig) (*NBDAttacher, error) {
	if cfg.Dir == "" || !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("%w: attachment directory %q is not an absolute path", ErrConfig, cfg.Dir)
	}
	if p := filepath.Join(cfg.Dir, "a-0123456789abcdef", nbdSocket); len(p) > 107 {
		return nil, fmt.Errorf("%w: attachment directory %q is too long for unix sockets", ErrConfig, cfg.Dir)
	}
	if cfg.Runner == nil {
		cfg.Runner = vm.ExecRunner{}
	}
	if cfg.Program == "" {
		cfg.Program = "qemu-storage-daemon"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return &NBDAttacher{cfg: cfg, log: cfg.Logger.With("attacher", "nbd"), locks: map[string]*sync.Mutex{}}, nil
}

func (a *NBDAttacher) lock(name string) func() {
	a.mu.Lock()
	l := a.locks[name]
	if l == nil {
		l = &sync.Mutex{}
		a.locks[name] = l
	}
	a.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// dir is the attachment's directory: a hash of its name, so its socket
// path is short whatever the names.
func (a *NBDAttacher) dir(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(a.cfg.Dir, "a-"+hex.EncodeToString(sum[:8]))
}

// URL is the NBD URL of the attachment of name.
func (a *NBDAttacher) URL(name string) string {
	return "nbd+unix:///" + nbdExport + "?socket=" + filepath.Join(a.dir(name), nbdSocket)
}

func (a *NBDAttacher) load(dir string) (nbdRecord, bool, error) {
	var rec nbdRecord
	b, err := os.ReadFile(filepath.Join(dir, nbdState))
	if errors.Is(err, fs.ErrNotExist) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("%w: %v", ErrAttach, err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, false, nil // a torn write: treated as no state
	}
	return rec, true, nil
}

func (a *NBDAttacher) save(dir string, rec nbdRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, nbdState+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("%w: %v", ErrAttach, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, nbdState)); err != nil {
		return fmt.Errorf("%w: %v", ErrAttach, err)
	}
	return nil
}

// procs are the daemon processes of an attachment: the recorded one and
// whatever the pid file names, if its command line is this attachment's
// (a daemon started just before a crash, whose PID was never recorded).
func (a *NBDAttacher) procs(dir string, rec nbdRecord) []vm.Proc {
	var out []vm.Proc
	if rec.Proc.PID > 0 && a.cfg.Runner.Alive(rec.Proc) {
		out = append(out, rec.Proc)
	}
	if b, err := os.ReadFile(filepath.Join(dir, nbdPID)); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && pid != rec.Proc.PID {
			if cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil &&
				bytes.Contains(cmd, []byte(filepath.Join(dir, nbdSocket))) {
				out = append(out, vm.Proc{PID: pid})
			}
		}
	}
	return out
}

// stop stops the attachment's daemons and clears its socket and secret.
func (a *NBDAttacher) stop(ctx context.Context, dir string, rec nbdRecord) error {
	var errs []error
	for _, p := range a.procs(dir, rec) {
		errs = append(errs, vm.StopProc(ctx, a.cfg.Runner, p, 5*time.Second))
	}
	for _, f := range []string{nbdSocket, nbdSecret, nbdPID} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Ensure implements Attacher.
func (a *NBDAttacher) Ensure(ctx context.Context, spec AttachSpec) (Attachment, error) {
	if err := spec.Validate(); err != nil {
		return Attachment{}, err
	}
	name := spec.Name()
	unlock := a.lock(name)
	defer unlock()
	dir := a.dir(name)
	hash := spec.Hash()
	rec, found, err := a.load(dir)
	if err != nil {
		return Attachment{}, err
	}
	sock := filepath.Join(dir, nbdSocket)
	if found && rec.SpecHash == hash && a.cfg.Runner.Alive(rec.Proc) && serves(ctx, sock) {
		return a.attachment(rec, true), nil
	}
	if err := a.stop(ctx, dir, rec); err != nil {
		return Attachment{}, fmt.Errorf("%w: %s: stop the previous daemon: %v", ErrAttach, name, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Attachment{}, fmt.Errorf("%w: %v", ErrAttach, err)
	}
	rec = nbdRecord{VC: spec.VC, Node: spec.Node, SpecHash: hash}
	// The state goes first, so a crash from here on leaves a trace List
	// reports and Remove clears.
	if err := a.save(dir, rec); err != nil {
		return Attachment{}, err
	}
	secretFile := ""
	if spec.Secret != "" {
		secretFile = filepath.Join(dir, nbdSecret)
		if err := writeSecretFile(secretFile, spec.Secret); err != nil {
			return Attachment{}, err
		}
		// The daemon holds the secret in memory once it serves; the file
		// goes whatever happens.
		defer os.Remove(secretFile)
	}
	bd := "driver=iscsi,node-name=" + nbdExport + ",transport=tcp,portal=" + spec.Portal + ",target=" + spec.Target +
		",lun=" + strconv.Itoa(spec.LUN) + ",initiator-name=" + spec.Initiator
	var args []string
	if secretFile != "" {
		args = append(args, "--object", "secret,id=chap0,file="+secretFile)
		bd += ",user=" + spec.User + ",password-secret=chap0"
	}
	args = append(args, "--blockdev", bd,
		"--nbd-server", "addr.type=unix,addr.path="+sock,
		"--export", "type=nbd,id=exp0,node-name="+nbdExport+",name="+nbdExport+",writable=on",
		"--pidfile", filepath.Join(dir, nbdPID))
	logFile := filepath.Join(dir, nbdLog)
	_ = os.Remove(logFile)
	t0 := time.Now()
	p, err := a.cfg.Runner.Start(ctx, vm.Cmd{Netns: a.cfg.Netns, Name: a.cfg.Program, Args: args, Dir: dir, Log: logFile})
	if p.PID > 0 {
		rec.Proc = p
		if serr := a.save(dir, rec); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	if err != nil {
		return a.attachment(rec, false), fmt.Errorf("%w: %s: %v", ErrAttach, name, err)
	}
	if err := a.waitServing(ctx, p, sock, logFile); err != nil {
		return a.attachment(rec, a.cfg.Runner.Alive(p)), fmt.Errorf("%w: %s: %v", ErrAttach, name, err)
	}
	a.log.Info("volume attached", "node", name, "target", spec.Target, "pid", p.PID, "took", time.Since(t0).Round(time.Millisecond))
	return a.attachment(rec, true), nil
}

func (a *NBDAttacher) attachment(rec nbdRecord, running bool) Attachment {
	name := rec.VC + "/" + rec.Node
	return Attachment{Name: name, VC: rec.VC, Node: rec.Node, URL: a.URL(name), PID: rec.Proc.PID, Running: running, SpecHash: rec.SpecHash}
}

// waitServing waits until the daemon accepts NBD connections; it fails
// early, with the end of the daemon's log, when the daemon exits (a
// refused login, for example).
func (a *NBDAttacher) waitServing(ctx context.Context, p vm.Proc, sock, logFile string) error {
	deadline := time.Now().Add(a.cfg.StartTimeout)
	for {
		if serves(ctx, sock) {
			return nil
		}
		if !a.cfg.Runner.Alive(p) {
			return fmt.Errorf("%s exited: %s", a.cfg.Program, logTail(logFile, 400))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not serve %s after %v: %s", a.cfg.Program, sock, a.cfg.StartTimeout, logTail(logFile, 400))
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// serves reports whether something accepts connections on the socket.
func serves(ctx context.Context, sock string) bool {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Remove implements Attacher.
func (a *NBDAttacher) Remove(ctx context.Context, name string) error {
	if _, _, err := vm.ParseName(name); err != nil {
		return err
	}
	unlock := a.lock(name)
	defer unlock()
	dir := a.dir(name)
	rec, _, err := a.load(dir)
	if err != nil {
		return err
	}
	if err := a.stop(ctx, dir, rec); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrAttach, name, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrAttach, name, err)
	}
	return nil
}

// List implements Attacher. A directory without a usable state (a crash
// before it was first written) names no node and is not listed; Sweep
// clears such debris.
func (a *NBDAttacher) List(ctx context.Context) ([]Attachment, error) {
	ents, err := os.ReadDir(a.cfg.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAttach, err)
	}
	var out []Attachment
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "a-") {
			continue
		}
		dir := filepath.Join(a.cfg.Dir, e.Name())
		rec, found, err := a.load(dir)
		if err != nil {
			return nil, err
		}
		if !found || a.dir(rec.VC+"/"+rec.Node) != dir {
			continue // see Sweep
		}
		procs := a.procs(dir, rec)
		at := a.attachment(rec, len(procs) > 0)
		if len(procs) > 0 {
			at.PID = procs[0].PID
		} else {
			at.Problems = append(at.Problems, "daemon not running")
		}
		out = append(out, at)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Sweep removes attachment directories without a usable state (a crash
// before the state was first written leaves an empty one): their daemons,
// if any run, are stopped first. It returns how many it removed.
func (a *NBDAttacher) Sweep(ctx context.Context) (int, error) {
	ents, err := os.ReadDir(a.cfg.Dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("%w: %v", ErrAttach, err)
	}
	n := 0
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "a-") {
			continue
		}
		dir := filepath.Join(a.cfg.Dir, e.Name())
		rec, found, err := a.load(dir)
		if err != nil || (found && a.dir(rec.VC+"/"+rec.Node) == dir) {
			continue
		}
		if err := a.stop(ctx, dir, nbdRecord{}); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func writeSecretFile(path, secret string) error {
	_ = os.Remove(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w: secret file: %v", ErrAttach, err)
	}
	_, werr := f.WriteString(secret)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(path)
		return fmt.Errorf("%w: secret file: %v", ErrAttach, err)
	}
	return nil
}

// logTail returns the last n bytes of a file on one line.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.Join(strings.Fields(string(b)), " ")
}
