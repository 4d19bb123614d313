package sge

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file is Grid Engine's cull_parse_cmdline: the option parser shared
// by qsub and qalter, used for the command line, "#$" directives, -@
// option files and defaults files.

// Pseudo option names for the non-option words of a qsub command line.
const (
	optScript = "<script>"
	optJobArg = "<jobarg>"
	optJobID  = "<jobid>"
	optStray  = "" // a non-option word inside a directive or option file
)

// opt is one parsed option, with its raw argument text and typed value.
type opt struct {
	name  string   // "-N", or a pseudo name
	arg   string   // the argument as given ("" for flags)
	str   string   // string value
	b     bool     // y/n value
	n     int      // integer value
	list  []string // list value (-hold_jid, -q, -M, job ids)
	paths []PathSpec
	vars  []EnvVar
	reqs  []Request
	rng   TaskRange
	pe    *PERequest
	t     time.Time
	soft  bool // -l/-q after -soft
	unset bool // -wd from -cwd (use the submit directory)
}

// parseError is an option error: Grid Engine's message and answer status.
type parseError struct {
	status int
	msg    string
}

func (e *parseError) Error() string { return e.msg }

func perr(status int, format string, args ...any) *parseError {
	return &parseError{status: status, msg: fmt.Sprintf(format, args...)}
}

// optParser parses option words the way cull_parse_cmdline does.
type optParser struct {
	prog     string // "qsub" or "qalter"
	sub      *Submitter
	readFile func(path string) ([]byte, error)
	now      time.Time
	loc      *time.Location
	warnings []string // raw warning messages, in order
	depth    int      // -@ nesting
}

// maxOptionFileDepth bounds -@ files that include themselves.
const maxOptionFileDepth = 16

// warnOnce lists the options whose repetition Grid Engine warns about.
var warnOnce = map[string]bool{
	"-a": true, "-A": true, "-b": true, "-C": true, "-dl": true, "-h": true,
	"-he": true, "-j": true, "-N": true, "-now": true, "-P": true, "-pe": true,
	"-r": true, "-R": true, "-shell": true, "-sync": true, "-w": true,
}

// noArgOptions are the flags the parser knows.
var noArgOptions = map[string]bool{
	"-clear": true, "-explain": true, "-xml": true, "-hard": true,
	"-help": true, "-notify": true, "-soft": true, "-terse": true,
	"-verify": true, "-verbose": true, "-inherit": true, "-nostdin": true,
	"-noshell": true, "-uall": true,
}

// parse parses words into *list. With pseudos (a qsub or qalter command
// line) the first non-option word is the script (qsub) or a job id list
// (qalter); otherwise non-option words are stray entries.
func (p *optParser) parse(words []string, pseudos bool, list *[]opt) *parseError {
	qalter := p.prog == "qalter"
	soft := false
	has := func(name string) bool {
		for _, o := range *list {
			if o.name == name {
				return true
			}
		}
		return false
	}
	add := func(o opt) { *list = append(*list, o) }
	for i := 0; i < len(words); i++ {
		w := words[i]
		if warnOnce[w] && has(w) && !(qalter && w == "-b") && !(qalter && w == "-shell") {
			p.warnings = append(p.warnings, fmt.Sprintf("\"%s\" option has already been set, overriding previous setting", w))
		}
		// next returns the option's argument.
		next := func(missing string) (string, *parseError) {
			if i+1 >= len(words) {
				if missing == "" {
					missing = w + " option must have argument"
				}
				return "", perr(statusESemantic, "%s", missing)
			}
			i++
			return words[i], nil
		}
		if noArgOptions[w] {
			switch w {
			case "-hard":
				soft = false
			case "-soft":
				soft = true
			}
			add(opt{name: w})
			continue
		}
		switch w {
		case "-cwd":
			add(opt{name: "-wd", unset: true})
			continue
		case "-V":
			add(opt{name: "-V", vars: environVars(p.sub)})
			continue
		case "-h":
			if !qalter {
				add(opt{name: "-h", str: "u"})
				continue
			}
		}
		var missing string
		switch w {
		case "-pe":
			missing = "-pe option must have pe_name argument"
		case "-q", "-masterq":
			missing = w + " option must have queue list argument"
		case "-S":
			missing = "-S option must have path_name argument"
		case "-t":
			missing = "-t option must have a list of task id ranges"
		case "-u":
			missing = "-u option must have a list usernames"
		case "-v":
			missing = "-v option must have variable list argument"
		case "-ac":
			missing = "-ac option must have a context_list list argument"
		case "-dc":
			missing = "-dc option must have a simple_context_list list argument"
		case "-sc":
			missing = "-sc option must have context list argument"
		case "-@":
			missing = "-@ option must have file argument"
		case "-display":
			missing = "-display option must have argument"
		}
		if known, err := p.parseArgOption(w, missing, next, soft, add); known {
			if err != nil {
				return err
			}
			continue
		}
		switch {
		case strings.HasPrefix(w, "-") && w != "-" && w != "--":
			return perr(statusESemantic, "invalid option argument \"%s\"", w)
		case !pseudos && (w == "-" || w == "--"):
			add(opt{name: w})
		case !pseudos:
			add(opt{name: optStray, str: w})
		case w == "--":
			if i+1 >= len(words) {
				return perr(statusESemantic, "-- option must be followed by job arguments")
			}
			for _, a := range words[i+1:] {
				add(opt{name: optJobArg, str: a})
			}
			i = len(words)
		case qalter && w == "-":
			return perr(statusESemantic, "invalid option argument \"%s\"", w)
		case qalter:
			ids := splitList(w)
			if len(ids) == 0 {
				return perr(statusESyntax, "Wrong job id list format \"%s\" specified", w)
			}
			add(opt{name: optJobID, arg: w, list: ids})
		default:
			add(opt{name: optScript, str: w})
			for _, a := range words[i+1:] {
				add(opt{name: optJobArg, str: a})
			}
			i = len(words)
		}
	}
	return nil
}

// parseArgOption handles the options that take arguments. known is false
// for a word that is no such option.
func (p *optParser) parseArgOption(w, missing string, next func(string) (string, *parseError), soft bool, add func(opt)) (known bool, err *parseError) {
	qalter := p.prog == "qalter"
	arg := func() (string, *parseError) { return next(missing) }
	switch w {
	case "-a", "-dl":
		s, e := arg()
		if e != nil {
			return true, e
		}
		t, ok := parseDateTime(s, p.now, p.loc)
		if !ok {
			if w == "-a" {
				return true, perr(statusESyntax, "Wrong date/time format \"%s\" specified to -a option", s)
			}
			return true, perr(statusESyntax, "Wrong date/time format \"%s\" specified to -dl option", s)
		}
		add(opt{name: w, arg: s, t: t})
	case "-A", "-P", "-ckpt", "-cat", "-cell", "-display", "-jsv":
		s, e := arg()
		if e != nil {
			return true, e
		}
		add(opt{name: w, arg: s, str: s})
	case "-ar", "-js", "-ot":
		s, e := arg()
		if e != nil {
			return true, e
		}
		v, ok := parseUint(s)
		if !ok {
			switch w {
			case "-ar":
				return true, perr(statusESemantic, "invalid advance reservation id, must be an unsigned integer")
			case "-js":
				return true, perr(statusESemantic, "invalid jobshare, must be an unsigned integer")
			default:
				return true, perr(statusESemantic, "invalid override tickets, must be an unsigned integer")
			}
		}
		add(opt{name: w, arg: s, n: v})
	case "-ac", "-dc", "-sc":
		s, e := arg()
		if e != nil {
			return true, e
		}
		vars, ok := parseVarList(s, false, nil)
		if !ok {
			return true, perr(statusESyntax, "Wrong context list format %s \"%s\"", w, s)
		}
		add(opt{name: w, arg: s, vars: vars})
	case "-b", "-shell":
		if qalter {
			return false, nil
		}
		fallthrough
	case "-j", "-now", "-R", "-sync", "-he", "-pty":
		s, e := arg()
		if e != nil {
			return true, e
		}
		b, ok := parseYesNo(s)
		if !ok {
			return true, perr(statusESyntax, "invalid option argument \"%s %s\"", w, s)
		}
		add(opt{name: w, arg: s, b: b})
	case "-r":
		s, e := arg()
		if e != nil {
			return true, e
		}
		b, ok := parseYesNo(s)
		if !ok {
			return true, perr(statusESyntax, "invalid option argument \"-r %s\"", s)
		}
		add(opt{name: w, arg: s, b: b})
	case "-binding":
		s, e := arg()
		if e != nil {
			return true, e
		}
		if s == "set" || s == "env" || s == "pe" {
			s2, e := arg()
			if e != nil {
				return true, e
			}
			s += " " + s2
		}
		add(opt{name: w, arg: s, str: s})
	case "-c":
		s, e := arg()
		if e != nil {
			return true, e
		}
		if !validCheckpointWhen(s) {
			return true, perr(statusESemantic, "-c argument invalid")
		}
		add(opt{name: w, arg: s, str: s})
	case "-C":
		s, e := arg()
		if e != nil {
			return true, e
		}
		add(opt{name: w, arg: s, str: s})
	case "-d":
		s, e := arg()
		if e != nil {
			return true, e
		}
		if _, _, err := ParseTime(s); err != nil {
			return true, perr(statusESyntax, "Wrong time format \"%s\" specified to -d option", s)
		}
		add(opt{name: w, arg: s, str: s})
	case "-e", "-o", "-i", "-S":
		s, e := arg()
		if e != nil {
			return true, e
		}
		paths, ok := parsePathList(s)
		if !ok {
			switch w {
			case "-o":
				return true, perr(statusESyntax, "Wrong stdout path list format \"%s\" specified to -o option", s)
			case "-S":
				return true, perr(statusESyntax, "Wrong shell list format \"%s\" specified to -S option", s)
			default:
				return true, perr(statusESyntax, "Wrong path list format \"%s\" specified to -e option", s)
			}
		}
		add(opt{name: w, arg: s, paths: paths})
	case "-h": // qalter: -h hold_list
		s, e := arg()
		if e != nil {
			return true, e
		}
		if !validHoldList(s, true) {
			return true, perr(statusESyntax, "Unknown hold list \"%s\" specified to -h option", s)
		}
		add(opt{name: w, arg: s, str: s})
	case "-hold_jid", "-hold_jid_ad":
		s, e := arg()
		if e != nil {
			return true, e
		}
		ids := splitList(s)
		if len(ids) == 0 {
			if w == "-hold_jid" {
				return true, perr(statusESyntax, "Wrong jid_hold list format \"%s\" specified to -hold_jid option", s)
			}
			return true, perr(statusESyntax, "Wrong jid_hold_ad list format \"%s\" specified to -hold_jid_ad option", s)
		}
		add(opt{name: w, arg: s, list: ids})
	case "-l":
		s, e := arg()
		if e != nil {
			return true, e
		}
		reqs, ok := parseResourceList(s)
		if !ok {
			return true, perr(statusESyntax, "Wrong resource list format \"%s\" specified to -l option", s)
		}
		add(opt{name: w, arg: s, reqs: reqs, soft: soft})
	case "-m":
		s, e := arg()
		if e != nil {
			return true, e
		}
		m, ok := parseMailOptions(s)
		if !ok {
			return true, perr(statusESyntax, "Wrong mail options list format \"%s\" specified to -m option", s)
		}
		add(opt{name: w, arg: s, str: m})
	case "-M":
		s, e := arg()
		if e != nil {
			return true, e
		}
		l := splitList(s)
		if len(l) == 0 {
			return true, perr(statusESyntax, "Wrong mail list format \"%s\" specified to -M option", s)
		}
		add(opt{name: w, arg: s, list: l})
	case "-masterq", "-q":
		s, e := arg()
		if e != nil {
			return true, e
		}
		l := splitList(s)
		if len(l) == 0 {
			return true, perr(statusESyntax, "Wrong queue list format \"%s\" specified to %s option", s, w)
		}
		add(opt{name: w, arg: s, list: l, soft: soft && w == "-q"})
	case "-N":
		s, e := arg()
		if e != nil {
			return true, e
		}
		if strings.Contains(s, "/") {
			return true, perr(statusESemantic, "argument to -N option must not contain / ")
		}
		if s == "" {
			return true, perr(statusESemantic, "empty string argument to -N option invalid")
		}
		add(opt{name: w, arg: s, str: s})
	case "-p":
		s, e := arg()
		if e != nil {
			return true, e
		}
		// Grid Engine converts with strtol and never notices a missing
		// number ("-p abc" is priority 0).
		v, _, _ := cStrtol(s)
		if v > 1024 || v < -1023 {
			return true, perr(statusESyntax, "invalid priority \"%d\".  Must be an integer from -1023 to 1024", clampInt32(v))
		}
		add(opt{name: w, arg: s, n: int(v)})
	case "-pe":
		name, e := arg()
		if e != nil {
			return true, e
		}
		s, e := next("-pe option must have range as 2nd argument")
		if e != nil {
			return true, e
		}
		pe, pe2 := parsePERange(name, s)
		if pe2 != nil {
			return true, pe2
		}
		add(opt{name: w, arg: name + " " + s, pe: pe})
	case "-t":
		s, e := arg()
		if e != nil {
			return true, e
		}
		ranges, undefined, msg := parseRangeList(s, true, false)
		if msg != "" {
			return true, perr(statusESyntax, "%s", msg)
		}
		if undefined || len(ranges) == 0 {
			return true, perr(statusESemantic, "-t option must have a list of task id ranges")
		}
		ranges = compressRanges(ranges)
		if len(ranges) > 1 {
			return true, perr(statusESyntax, "ERROR! -t option only allows one range specification")
		}
		r := ranges[0]
		add(opt{name: w, arg: s, rng: TaskRange{First: clampInt32(r[0]), Last: clampInt32(r[1]), Step: clampInt32(r[2])}})
	case "-tc":
		s, e := arg()
		if e != nil {
			return true, e
		}
		v, _, ok := cStrtol(s)
		if !ok || v < 0 {
			return true, perr(statusESyntax, "invalid task concurrency number %d. Must be an integer greater or equal to 0.", clampInt32(v))
		}
		add(opt{name: w, arg: s, n: clampInt32(v)})
	case "-u":
		s, e := arg()
		if e != nil {
			return true, e
		}
		add(opt{name: w, arg: s, list: splitList(s)})
	case "-v":
		s, e := arg()
		if e != nil {
			return true, e
		}
		vars, ok := parseVarList(s, true, p.sub)
		if !ok {
			return true, perr(statusESyntax, "Wrong variable list format -v \"%s\" or environment variable not set", s)
		}
		add(opt{name: w, arg: s, vars: vars})
	case "-w":
		s, e := arg()
		if e != nil {
			return true, e
		}
		if len(s) != 1 || !strings.Contains("ewnvp", s) {
			return true, perr(statusESyntax, "invalid option argument \"-w %s\"", s)
		}
		add(opt{name: w, arg: s, str: s})
	case "-wd":
		s, e := arg()
		if e != nil {
			return true, e
		}
		add(opt{name: w, arg: s, str: s})
	case "-@":
		s, e := arg()
		if e != nil {
			return true, e
		}
		return true, p.parseOptionFile(s, add)
	default:
		return false, nil
	}
	return true, nil
}

// parseOptionFile reads a -@ file and parses its lines as options.
func (p *optParser) parseOptionFile(path string, add func(opt)) *parseError {
	if p.depth >= maxOptionFileDepth {
		return perr(statusEUnknown, "error reading from file %s", path)
	}
	if p.readFile == nil {
		return perr(statusEDisk, "error opening %s: %s", path, "No such file or directory")
	}
	content, err := p.readFile(path)
	if err != nil {
		if isDirError(err) {
			return perr(statusEUnknown, "error reading from file %s", path)
		}
		return perr(statusEDisk, "error opening %s: %s", path, strerror(err))
	}
	p.depth++
	defer func() { p.depth-- }()
	var fileOpts []opt
	for _, d := range scanOptionFile(content) {
		if e := p.parse(d.Tokens, false, &fileOpts); e != nil {
			return e
		}
	}
	for _, o := range fileOpts {
		add(o)
	}
	return nil
}

func parsePERange(name, s string) (*PERequest, *parseError) {
	ranges, undefined, msg := parseRangeList(s, false, true)
	if msg != "" {
		return nil, perr(statusESyntax, "%s", msg)
	}
	if undefined || len(ranges) == 0 {
		return nil, perr(statusESemantic, "-pe option must have range as 2nd argument")
	}
	pe := &PERequest{Name: name}
	for _, r := range compressRanges(ranges) {
		pe.Ranges = append(pe.Ranges, SlotRange{Min: clampInt32(r[0]), Max: clampInt32(r[1])})
	}
	pe.Min = pe.Ranges[0].Min
	pe.Max = pe.Ranges[len(pe.Ranges)-1].Max
	if len(pe.Ranges) == 1 {
		pe.Ranges = nil
	}
	return pe, nil
}

func clampInt32(v int64) int {
	switch {
	case v > 1<<31-1:
		return 1<<31 - 1
	case v < -(1 << 31):
		return -(1 << 31)
	}
	return int(v)
}

func parseUint(s string) (int, bool) {
	v, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, false
	}
	return int(v), true
}

// validCheckpointWhen checks -c: one or more of n, s, m, x, r, or a time
// interval.
func validCheckpointWhen(s string) bool {
	if s == "" {
		return false
	}
	letters := true
	for _, c := range s {
		if !strings.ContainsRune("nsmxr", c) {
			letters = false
			break
		}
	}
	if letters {
		return true
	}
	d, _, err := ParseTime(s)
	return err == nil && d > 0
}

// validHoldList checks a hold list: letters of n u s o (and U S O for
// qalter).
func validHoldList(s string, qalter bool) bool {
	if s == "" {
		return false
	}
	allowed := "uso"
	if qalter {
		allowed = "nusoUSO"
	}
	for _, c := range s {
		if !strings.ContainsRune(allowed, c) {
			return false
		}
	}
	return true
}

// environVars returns the submit environment as variables (-V).
func environVars(sub *Submitter) []EnvVar {
	if sub == nil {
		return nil
	}
	var out []EnvVar
	for _, kv := range sub.Env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		out = mergeVars(out, []EnvVar{{Name: name, Value: value}})
	}
	return out
}

// strerror words a file error like C's strerror: Go's error text for the
// errno, capitalised ("No such file or directory").
func strerror(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "No such file or directory"
	case errors.Is(err, fs.ErrPermission):
		return "Permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	msg := err.Error()
	r, n := utf8.DecodeRuneInString(msg)
	if n == 0 {
		return msg
	}
	return string(unicode.ToUpper(r)) + msg[n:]
}

func isDirError(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "is a directory")
}
