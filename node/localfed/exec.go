package localfed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// ExecEnv is the environment of a command run in site s's namespace: base
// (the caller's, without MUSUBI_* variables) plus what makes the site's
// tools find the site: the musubi commands its peer's API socket and the
// admin token, `musubi peer` its musubi.json, `musubi site` its state
// directory, ovs-vsctl/ovs-ofctl its Open vSwitch, tgtadm its tgtd; and
// exeDir (the musubi binary's directory) first in PATH.
func ExecEnv(st State, s Site, base []string, exeDir string) []string {
	var env []string
	path := ""
	for _, kv := range base {
		switch {
		case strings.HasPrefix(kv, "MUSUBI_"):
		case strings.HasPrefix(kv, "PATH="):
			path = strings.TrimPrefix(kv, "PATH=")
		default:
			env = append(env, kv)
		}
	}
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	if exeDir != "" {
		path = exeDir + ":" + path
	}
	ovs := filepath.Join(s.Dir, "ovs")
	return append(env,
		"PATH="+path,
		"MUSUBI_API="+s.Socket,
		"MUSUBI_TOKEN_FILE="+st.TokenFile,
		"MUSUBI_CONFIG="+s.PeerConfig,
		"MUSUBI_STATE_DIR="+s.Dir,
		"MUSUBI_LOCAL_DIR="+st.Dir,
		"MUSUBI_LOCAL_SITE="+s.Name,
		"OVS_RUNDIR="+ovs, "OVS_DBDIR="+ovs, "OVS_LOGDIR="+ovs,
		"TGT_IPC_SOCKET="+filepath.Join(s.Dir, "tgt", "tgtd.sock"),
	)
}

// ExecArgv is the command line that runs argv in site s's namespace.
func ExecArgv(s Site, argv []string) []string {
	return append([]string{"ip", "netns", "exec", s.Netns}, argv...)
}

// ExecSpec parses the arguments of `musubi local exec` after its flags:
// "<site> [<node>] -- <command...>". node is "" when not given.
func ExecSpec(args []string) (site, node string, argv []string, err error) {
	dash := -1
	for i, a := range args {
		if a == "--" {
			dash = i
			break
		}
	}
	if dash < 0 {
		return "", "", nil, fmt.Errorf("%w: want <site> [<node>] -- <command...> (the command after --)", ErrInvalid)
	}
	pos, argv := args[:dash], args[dash+1:]
	switch {
	case len(pos) == 0:
		return "", "", nil, fmt.Errorf("%w: name the site before -- (e.g. s1)", ErrInvalid)
	case len(pos) > 2:
		return "", "", nil, fmt.Errorf("%w: %q: want <site> [<node>] before --", ErrInvalid, strings.Join(pos, " "))
	case len(argv) == 0:
		return "", "", nil, fmt.Errorf("%w: no command after --", ErrInvalid)
	}
	for _, p := range pos {
		if strings.HasPrefix(p, "-") {
			return "", "", nil, fmt.Errorf("%w: %q: flags go before the site", ErrInvalid, p)
		}
	}
	site = pos[0]
	if len(pos) == 2 {
		node = pos[1]
	}
	return site, node, argv, nil
}

// Stdio are the standard streams of a command Exec runs, and the signals
// to pass on to it.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
	// Signals, when not nil, are sent to the command as they arrive (a
	// terminal's ^C reaches the command by itself, as part of the
	// foreground process group; the caller passes on the others, such as
	// SIGTERM and SIGHUP).
	Signals <-chan os.Signal
}

// Exec runs argv in site's namespace with ExecEnv's environment and the
// caller's streams, and returns its exit status (128+n when signal n ended
// it). It waits for the command to end; ctx only bounds reading the
// federation's record.
func Exec(ctx context.Context, dir, site string, argv []string, sio Stdio) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	st, err := Load(dir)
	if err != nil {
		return 0, err
	}
	s, err := st.Site(site)
	if err != nil {
		return 0, err
	}
	exeDir := ""
	if exe, err := os.Executable(); err == nil {
		exeDir = filepath.Dir(exe)
	}
	full := ExecArgv(*s, argv)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Env = ExecEnv(st, *s, os.Environ(), exeDir)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = sio.In, sio.Out, sio.Err
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("localfed: %w", err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	if sio.Signals != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case sig := <-sio.Signals:
					_ = cmd.Process.Signal(sig)
				case <-done:
					return
				}
			}
		}()
	}
	err = cmd.Wait()
	close(done)
	wg.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("localfed: %w", err)
	}
	return 0, nil
}
