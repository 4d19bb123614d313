package executor

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Runner runs jobs on this host. Its fields are configuration, read only
// while jobs run; one Runner may run many jobs concurrently. The zero value
// is usable.
type Runner struct {
	// Hostname is this host's name: $HOSTNAME, $HOSTNAME in -o/-e paths,
	// the PE hostfile's default line and -o host selection. "" means
	// os.Hostname().
	Hostname string
	// Logger receives the runner's logs; nil discards them.
	Logger *slog.Logger
	// Cell is $SGE_CELL; "" means "default".
	Cell string
	// SGERoot is $SGE_ROOT; "" leaves it unset (there is no Grid Engine
	// installation to point at).
	SGERoot string
	// BinaryPath is $SGE_BINARY_PATH, where the qsub/qstat commands live;
	// "" means the directory of the running executable.
	BinaryPath string
	// Path is the job's PATH unless -v/-V set one; "" means DefaultPath.
	Path string
	// InheritEnv names the variables jobs inherit from the runner's
	// environment (a trailing "*" matches a prefix); nil means
	// DefaultInheritEnv, an empty slice means none.
	InheritEnv []string
	// MinUID is Grid Engine's min_uid: jobs of users with a smaller uid
	// are refused with ErrNotPermitted. The default 0 allows root jobs.
	MinUID uint32
	// Prlimit is the prlimit(1) command used to set h_vmem and h_cpu; ""
	// means /usr/bin/prlimit, or "prlimit" in the runner's PATH.
	Prlimit string

	// geteuid replaces os.Geteuid in tests.
	geteuid func() int
}

func (r *Runner) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (r *Runner) hostname() string {
	if r.Hostname != "" {
		return r.Hostname
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

func (r *Runner) cell() string {
	if r.Cell != "" {
		return r.Cell
	}
	return "default"
}

func (r *Runner) defaultPath() string {
	if r.Path != "" {
		return r.Path
	}
	return DefaultPath
}

func (r *Runner) inheritEnv() []string {
	if r.InheritEnv != nil {
		return r.InheritEnv
	}
	return DefaultInheritEnv
}

func (r *Runner) binaryPath() string {
	if r.BinaryPath != "" {
		return r.BinaryPath
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Dir(exe)
}

func (r *Runner) euid() int {
	if r.geteuid != nil {
		return r.geteuid()
	}
	return os.Geteuid()
}

// validate checks the request for caller bugs.
func validate(req *Request) error {
	switch {
	case req.JobID <= 0:
		return fmt.Errorf("%w: job id %d", ErrInvalidRequest, req.JobID)
	case req.TaskID < 0:
		return fmt.Errorf("%w: task id %d", ErrInvalidRequest, req.TaskID)
	case req.User == "":
		return fmt.Errorf("%w: no user", ErrInvalidRequest)
	case req.UID == 0 && req.User != "root":
		return fmt.Errorf("%w: uid 0 for user %q", ErrInvalidRequest, req.User)
	case req.Binary && req.Command == "":
		return fmt.Errorf("%w: binary job without a command", ErrInvalidRequest)
	case strings.ContainsRune(req.Command, 0) || strings.ContainsRune(req.Shell, 0):
		return fmt.Errorf("%w: NUL in command or shell", ErrInvalidRequest)
	case req.Slots < 0 || req.Limits.HVmem < 0 || req.Limits.HRT < 0 || req.Limits.SRT < 0 || req.Limits.HCPU < 0:
		return fmt.Errorf("%w: negative slots or limit", ErrInvalidRequest)
	}
	for _, a := range req.Args {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("%w: NUL in argument", ErrInvalidRequest)
		}
	}
	return nil
}

// jobName is the request's name, or Grid Engine's default for it.
func jobName(req *Request) string {
	switch {
	case req.JobName != "":
		return req.JobName
	case req.Binary:
		return filepath.Base(req.Command)
	default:
		return "STDIN"
	}
}

// slotCounts returns NSLOTS, NHOSTS, NQUEUES and the slots on this host.
func slotCounts(req *Request, host string) (nslots, nhosts, nqueues, here int) {
	hosts := map[string]bool{}
	sum := 0
	for _, h := range req.PEHosts {
		hosts[strings.ToLower(h.Host)] = true
		sum += h.Slots
		if sameHost(h.Host, host) {
			here += h.Slots
		}
	}
	nslots = req.Slots
	if nslots == 0 {
		nslots = max(sum, 1)
	}
	nhosts = max(len(hosts), 1)
	nqueues = max(len(req.PEHosts), 1)
	switch {
	case len(req.PEHosts) == 0:
		here = nslots
	case here == 0:
		here = 1
	}
	return nslots, nhosts, nqueues, here
}

// peHostfile renders Grid Engine's PE hostfile: "host slots queue
// processors" per line.
func peHostfile(req *Request, host, queue string, nslots int) string {
	hosts := req.PEHosts
	if len(hosts) == 0 {
		hosts = []PEHost{{Host: host, Slots: nslots}}
	}
	var b strings.Builder
	for _, h := range hosts {
		q := h.Queue
		if q == "" {
			q = queue + "@" + h.Host
		}
		fmt.Fprintf(&b, "%s %d %s UNDEFINED\n", h.Host, h.Slots, q)
	}
	return b.String()
}
