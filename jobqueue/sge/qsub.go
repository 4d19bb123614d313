package sge

import (
	"fmt"
	"strings"
	"time"
)

// QsubRequest is everything ParseQsub needs; the caller does the I/O.
type QsubRequest struct {
	// Args are qsub's arguments, without the program name.
	Args []string
	// DefaultArgs are the options of the sge_request defaults files
	// (already split into words), lowest precedence.
	DefaultArgs []string
	// Submitter is who submits, from where, with which environment.
	Submitter Submitter
	// ReadFile reads the job script and -@ option files (paths as given,
	// relative to the submit directory). A nil ReadFile fails every read.
	ReadFile func(path string) ([]byte, error)
	// ReadStdin reads the job script from standard input; it is called
	// only when the script comes from there.
	ReadStdin func() ([]byte, error)
	// Now and Location resolve -a and -dl date_time values (zero Now: the
	// Unix epoch; nil Location: time.Local).
	Now      time.Time
	Location *time.Location
}

// QsubResult is a parsed qsub command line.
type QsubResult struct {
	// Spec is the job to submit (meaningless when Help is set).
	Spec JobSpec
	// Help is -help: print HelpText("qsub") and exit 0.
	Help bool
	// Warnings are the lines qsub prints on stdout before it submits
	// ("warning: ..." / "qsub: warning: ...").
	Warnings []string
}

// ParseQsub parses a qsub invocation exactly like Grid Engine 8.1.9: the
// defaults, the command line, the "#$" directives of the script (searched
// in the whole script, prefix changed by -C, disabled by an empty -C), and -@
// option files; the command line overrides directives, which override
// defaults. Option errors return a KindUsage *Error ("qsub: ..."), script
// problems a KindScript *Error, both with qsub's exit code. Checks that
// Grid Engine leaves to qmaster are done by Cluster.Validate.
func ParseQsub(req QsubRequest) (*QsubResult, error) {
	sub := req.Submitter
	completeSubmitter(&sub)
	p := &optParser{prog: "qsub", sub: &sub, readFile: req.ReadFile, now: req.Now, loc: req.Location}
	res := &QsubResult{}

	var defaults, cmdline, script []opt
	if len(req.DefaultArgs) > 0 {
		if e := p.parse(req.DefaultArgs, false, &defaults); e != nil {
			return nil, plainErr(e.status, e.msg)
		}
		for _, w := range p.warnings {
			res.Warnings = append(res.Warnings, "warning: "+w)
		}
		p.warnings = nil
	}

	if e := p.parse(req.Args, true, &cmdline); e != nil {
		return nil, usageErr("qsub", e.status, e.msg)
	}
	for _, w := range p.warnings {
		res.Warnings = append(res.Warnings, "qsub: warning: "+w)
	}
	p.warnings = nil
	if hasOpt(cmdline, "-help") {
		res.Help = true
		return res, nil
	}

	binary := false
	if o, ok := lastOpt(cmdline, "-b"); ok {
		binary = o.b
	} else if o, ok := lastOpt(defaults, "-b"); ok {
		binary = o.b
	}

	var content []byte
	scriptPath := ""
	if o, ok := lastOpt(cmdline, optScript); ok {
		scriptPath = o.str
	}
	if !binary {
		var err error
		content, err = readScript(req, scriptPath)
		if err != nil {
			return nil, err
		}
		prefix := DefaultDirectivePrefix
		if o, ok := lastOpt(cmdline, "-C"); ok {
			prefix = o.str
		}
		for _, d := range ScanDirectives(content, prefix) {
			if e := p.parse(d.Tokens, false, &script); e != nil {
				return nil, scriptErr(e.status, e.msg)
			}
		}
		for _, w := range p.warnings {
			res.Warnings = append(res.Warnings, "warning: "+w)
		}
		p.warnings = nil
		script = dropOpts(script, "-C") // -C is ignored in scripts
	}

	all := make([]opt, 0, len(defaults)+len(script)+len(cmdline))
	all = append(all, defaults...)
	all = append(all, script...)
	all = append(all, cmdline...)
	spec, err := buildJobSpec(all, &sub, binary)
	if err != nil {
		return nil, err
	}
	if !binary {
		spec.Script = content
	}
	res.Spec = spec
	return res, nil
}

// readScript reads the job script from its file or from standard input.
func readScript(req QsubRequest, path string) ([]byte, error) {
	if path == "" || path == "-" {
		if req.ReadStdin == nil {
			return nil, scriptErr(statusEUnknown, "no input read from stdin")
		}
		b, err := req.ReadStdin()
		if err != nil {
			return nil, scriptErr(statusEUnknown, "error reading from stdin")
		}
		if len(b) == 0 {
			return nil, scriptErr(statusEUnknown, "no input read from stdin")
		}
		return b, nil
	}
	if req.ReadFile == nil {
		return nil, scriptErr(statusEDisk, fmt.Sprintf("error opening %s: %s", path, "No such file or directory"))
	}
	b, err := req.ReadFile(path)
	if err != nil {
		if isDirError(err) {
			return nil, scriptErr(statusEUnknown, fmt.Sprintf("error reading from file %s", path))
		}
		return nil, scriptErr(statusEDisk, fmt.Sprintf("error opening %s: %s", path, strerror(err)))
	}
	return b, nil
}

// completeSubmitter fills the SGE_O_* values that come from the submit
// environment (Grid Engine 8.1.9 passes PATH, SHELL and TZ; LOGNAME and
// MAIL only when the caller sets them).
func completeSubmitter(s *Submitter) {
	fill := func(dst *string, name string) {
		if *dst == "" {
			*dst, _ = s.Getenv(name)
		}
	}
	fill(&s.Path, "PATH")
	fill(&s.Shell, "SHELL")
	fill(&s.TZ, "TZ")
	if s.Home == "" {
		s.Home, _ = s.Getenv("HOME")
	}
}

func hasOpt(list []opt, name string) bool {
	_, ok := lastOpt(list, name)
	return ok
}

func lastOpt(list []opt, name string) (opt, bool) {
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].name == name {
			return list[i], true
		}
	}
	return opt{}, false
}

func dropOpts(list []opt, name string) []opt {
	out := list[:0]
	for _, o := range list {
		if o.name != name {
			out = append(out, o)
		}
	}
	return out
}

// qsubIgnored are options qsub accepts without effect on the job.
var qsubIgnored = map[string]bool{
	"-hard": true, "-soft": true, "-help": true, "-jsv": true, "-he": true,
	"-u": true, "-C": true, "-terse": true, "-sync": true,
}

// buildJobSpec turns the merged option list into a JobSpec, the way Grid
// Engine's cull_parse_job_parameter does: later options override earlier
// ones, list options accumulate, -clear drops everything before it.
func buildJobSpec(all []opt, sub *Submitter, binary bool) (JobSpec, error) {
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].name == "-clear" {
			var kept []opt
			for _, o := range all[:i] {
				if !strings.HasPrefix(o.name, "-") {
					kept = append(kept, o) // pseudo arguments survive
				}
			}
			all = append(kept, all[i+1:]...)
			break
		}
	}
	spec := JobSpec{Submitter: *sub, Binary: binary, Account: "sge"}
	spec.Submitter.Env = nil
	spec.Env = []EnvVar{termVar(sub)}
	for _, o := range all {
		switch o.name {
		case "-a":
			spec.StartTime = o.t
		case "-A":
			spec.Account = o.str
		case "-ac", "-dc", "-sc":
			spec.Context = applyContext(spec.Context, o.name, o.vars)
		case "-ar":
			// advance reservations are not supported; the id is dropped
		case "-b":
			spec.Binary = o.b
		case "-binding":
			spec.Binding = o.str
		case "-c":
			spec.CheckpointWhen = o.str
		case "-ckpt":
			spec.Checkpoint = o.str
		case "-dl":
			spec.Deadline = o.t
		case "-e":
			spec.Stderr = mergePaths(spec.Stderr, o.paths)
		case "-h":
			spec.UserHold = true
		case "-hold_jid":
			spec.HoldJobs = append(spec.HoldJobs, o.list...)
		case "-hold_jid_ad":
			spec.HoldArrayJobs = append(spec.HoldArrayJobs, o.list...)
		case "-i":
			spec.Stdin = mergePaths(spec.Stdin, o.paths)
		case "-j":
			spec.Join = o.b
		case "-js":
			spec.JobShare = o.n
		case "-l":
			if o.soft {
				spec.Resources.Soft = mergeRequests(spec.Resources.Soft, o.reqs)
			} else {
				spec.Resources.Hard = mergeRequests(spec.Resources.Hard, o.reqs)
			}
		case "-m":
			spec.MailOptions = mergeMail(spec.MailOptions, o.str)
		case "-M":
			spec.MailList = appendNew(spec.MailList, o.list...)
		case "-masterq":
			spec.MasterQueues = appendNew(spec.MasterQueues, o.list...)
		case "-N":
			spec.Name = o.str
		case "-notify":
			spec.Notify = true
		case "-now":
			spec.Immediate = o.b
		case "-o":
			spec.Stdout = mergePaths(spec.Stdout, o.paths)
		case "-p":
			spec.Priority = o.n
		case "-P":
			spec.Project = o.str
		case "-pe":
			pe := *o.pe
			spec.PE = &pe
		case "-q":
			if o.soft {
				spec.SoftQueues = appendNew(spec.SoftQueues, o.list...)
			} else {
				spec.Queues = appendNew(spec.Queues, o.list...)
			}
		case "-r":
			b := o.b
			spec.Rerun = &b
		case "-R":
			spec.Reserve = o.b
		case "-S":
			spec.Shell = mergePaths(spec.Shell, o.paths)
		case "-shell":
			spec.NoShell = !o.b
		case "-sync":
			spec.Sync = spec.Sync || o.b // qsub waits if any -sync says yes
		case "-t":
			r := o.rng
			spec.Array = &r
		case "-tc":
			spec.TaskConcurrency = o.n
		case "-terse":
			spec.Terse = true
		case "-v", "-V":
			spec.Env = mergeVars(spec.Env, o.vars)
		case "-verify":
			spec.VerifyOnly = true
		case "-w":
			spec.Verify = o.str
		case "-wd":
			if o.unset {
				spec.Cwd = sub.Cwd
			} else {
				spec.Cwd = o.str
			}
		case optScript:
			spec.ScriptFile = o.str
		case optJobArg:
			spec.Args = append(spec.Args, o.str)
		default:
			if qsubIgnored[o.name] {
				continue
			}
			// A stray word of a directive has no name: Grid Engine then
			// says just "Unknown option ".
			msg := "Unknown option " + o.name
			if o.arg != "" {
				msg += " " + o.arg
			}
			return JobSpec{}, usageErr("qsub", statusENoImp, msg)
		}
	}
	if spec.ScriptFile == "" || spec.ScriptFile == "-" {
		if spec.Binary {
			return JobSpec{}, usageErr("qsub", statusESemantic, "command required for a binary job")
		}
		spec.ScriptFile = "STDIN"
	}
	if spec.Name == "" {
		spec.Name = basename(spec.ScriptFile)
	}
	if len(spec.MailList) == 0 && sub.User != "" {
		spec.MailList = []string{sub.User + "@" + sub.Host}
	}
	return spec, nil
}

// termVar is the TERM variable Grid Engine passes with every job.
func termVar(sub *Submitter) EnvVar {
	if v, ok := sub.Getenv("TERM"); ok {
		return EnvVar{Name: "TERM", Value: v}
	}
	return EnvVar{Name: "TERM", Unset: true}
}

func basename(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// mergeRequests adds requests; a request for a resource already in the
// list replaces it.
func mergeRequests(old, add []Request) []Request {
	out := append([]Request(nil), old...)
	for _, r := range add {
		replaced := false
		for i := range out {
			if out[i].Name == r.Name {
				out[i] = r
				replaced = true
			}
		}
		if !replaced {
			out = append(out, r)
		}
	}
	return out
}

func mergeMail(old, add string) string {
	if add == "n" {
		return "n"
	}
	if old == "n" {
		old = ""
	}
	merged, _ := parseMailOptions(old + add)
	return merged
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		found := false
		for _, have := range list {
			if have == it {
				found = true
				break
			}
		}
		if !found {
			list = append(list, it)
		}
	}
	return list
}

// applyContext applies -ac (add), -dc (delete) and -sc (set) in order.
func applyContext(ctx []EnvVar, op string, vars []EnvVar) []EnvVar {
	switch op {
	case "-sc":
		return mergeVars(nil, vars)
	case "-dc":
		var out []EnvVar
		for _, v := range ctx {
			drop := false
			for _, d := range vars {
				if d.Name == v.Name {
					drop = true
				}
			}
			if !drop {
				out = append(out, v)
			}
		}
		return out
	default:
		return mergeVars(ctx, vars)
	}
}
