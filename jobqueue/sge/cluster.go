package sge

import (
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"
)

// ComplexType is the value type of a Grid Engine complex attribute.
type ComplexType string

// Complex attribute types.
const (
	TypeString ComplexType = "STRING"
	TypeInt    ComplexType = "INT"
	TypeDouble ComplexType = "DOUBLE"
	TypeTime   ComplexType = "TIME"
	TypeMemory ComplexType = "MEMORY"
	TypeBool   ComplexType = "BOOL"
	TypeHost   ComplexType = "HOST"
)

// Complex is one attribute of Grid Engine's complex configuration (qconf
// -sc): what "-l name=value" may request.
type Complex struct {
	Name        string
	Shortcut    string
	Type        ComplexType
	Requestable bool
	Consumable  bool
}

// DefaultComplexes is the complex configuration of a stock Grid Engine
// 8.1.9 cell (../shared/sge-reference/complexes.txt).
var DefaultComplexes = []Complex{
	{Name: "arch", Shortcut: "a", Type: TypeString, Requestable: true, Consumable: false},
	{Name: "calendar", Shortcut: "c", Type: TypeString, Requestable: true, Consumable: false},
	{Name: "cpu", Shortcut: "cpu", Type: TypeDouble, Requestable: true, Consumable: false},
	{Name: "display_win_gui", Shortcut: "dwg", Type: TypeBool, Requestable: true, Consumable: false},
	{Name: "h_core", Shortcut: "h_core", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "h_cpu", Shortcut: "h_cpu", Type: TypeTime, Requestable: true, Consumable: false},
	{Name: "h_data", Shortcut: "h_data", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "h_fsize", Shortcut: "h_fsize", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "h_rss", Shortcut: "h_rss", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "h_rt", Shortcut: "h_rt", Type: TypeTime, Requestable: true, Consumable: false},
	{Name: "h_stack", Shortcut: "h_stack", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "h_vmem", Shortcut: "h_vmem", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "hostname", Shortcut: "h", Type: TypeHost, Requestable: true, Consumable: false},
	{Name: "load_avg", Shortcut: "la", Type: TypeDouble, Requestable: false, Consumable: false},
	{Name: "load_long", Shortcut: "ll", Type: TypeDouble, Requestable: false, Consumable: false},
	{Name: "load_medium", Shortcut: "lm", Type: TypeDouble, Requestable: false, Consumable: false},
	{Name: "load_short", Shortcut: "ls", Type: TypeDouble, Requestable: false, Consumable: false},
	{Name: "m_core", Shortcut: "core", Type: TypeInt, Requestable: true, Consumable: false},
	{Name: "m_socket", Shortcut: "socket", Type: TypeInt, Requestable: true, Consumable: false},
	{Name: "m_thread", Shortcut: "thread", Type: TypeInt, Requestable: true, Consumable: false},
	{Name: "m_topology", Shortcut: "topo", Type: TypeString, Requestable: true, Consumable: false},
	{Name: "m_topology_inuse", Shortcut: "utopo", Type: TypeString, Requestable: true, Consumable: false},
	{Name: "mem_free", Shortcut: "mf", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "mem_total", Shortcut: "mt", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "mem_used", Shortcut: "mu", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "min_cpu_interval", Shortcut: "mci", Type: TypeTime, Requestable: false, Consumable: false},
	{Name: "np_load_avg", Shortcut: "nla", Type: TypeDouble, Requestable: false, Consumable: false},
	{Name: "np_load_long", Shortcut: "nll", Type: TypeDouble, Requestable: false, Consumable: false},
	{Name: "np_load_medium", Shortcut: "nlm", Type: TypeDouble, Requestable: false, Consumable: false},
	{Name: "np_load_short", Shortcut: "nls", Type: TypeDouble, Requestable: false, Consumable: false},
	{Name: "num_proc", Shortcut: "p", Type: TypeInt, Requestable: true, Consumable: false},
	{Name: "qname", Shortcut: "q", Type: TypeString, Requestable: true, Consumable: false},
	{Name: "rerun", Shortcut: "re", Type: TypeBool, Requestable: false, Consumable: false},
	{Name: "s_core", Shortcut: "s_core", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "s_cpu", Shortcut: "s_cpu", Type: TypeTime, Requestable: true, Consumable: false},
	{Name: "s_data", Shortcut: "s_data", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "s_fsize", Shortcut: "s_fsize", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "s_rss", Shortcut: "s_rss", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "s_rt", Shortcut: "s_rt", Type: TypeTime, Requestable: true, Consumable: false},
	{Name: "s_stack", Shortcut: "s_stack", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "s_vmem", Shortcut: "s_vmem", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "seq_no", Shortcut: "seq", Type: TypeInt, Requestable: false, Consumable: false},
	{Name: "slots", Shortcut: "s", Type: TypeInt, Requestable: true, Consumable: true},
	{Name: "swap_free", Shortcut: "sf", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "swap_rate", Shortcut: "sr", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "swap_rsvd", Shortcut: "srsv", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "swap_total", Shortcut: "st", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "swap_used", Shortcut: "su", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "tmpdir", Shortcut: "tmp", Type: TypeString, Requestable: false, Consumable: false},
	{Name: "virtual_free", Shortcut: "vf", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "virtual_total", Shortcut: "vt", Type: TypeMemory, Requestable: true, Consumable: false},
	{Name: "virtual_used", Shortcut: "vu", Type: TypeMemory, Requestable: true, Consumable: false},
}

// DefaultPEs are the parallel environments of the reference cell (Debian's
// make, mpi and smp).
var DefaultPEs = []string{"make", "mpi", "smp"}

// DefaultQueues are the cluster queues of the reference cell.
var DefaultQueues = []string{"all.q"}

// Cluster is the configuration qmaster checks a submission against. The
// zero value is the reference cell: DefaultComplexes, DefaultPEs,
// DefaultQueues, host names not checked, no projects.
type Cluster struct {
	// Complexes are the requestable attributes (nil: DefaultComplexes).
	Complexes []Complex
	// PEs are the parallel environment names (nil: DefaultPEs).
	PEs []string
	// Queues are the cluster queue names (nil: DefaultQueues).
	Queues []string
	// Hosts are the execution host names; nil disables the host checks of
	// -l hostname= and -q queue@host.
	Hosts []string
	// Projects are the defined projects; every -P naming another is rejected.
	Projects []string
	// MaxArrayTasks is max_aj_tasks, the largest array job accepted (0:
	// DefaultMaxArrayTasks; negative: no limit).
	MaxArrayTasks int
}

// DefaultMaxArrayTasks is Grid Engine's default max_aj_tasks.
const DefaultMaxArrayTasks = 75000

func (c Cluster) complexes() []Complex {
	if c.Complexes == nil {
		return DefaultComplexes
	}
	return c.Complexes
}

// Complex looks a complex attribute up by full name or shortcut.
func (c Cluster) Complex(name string) (Complex, bool) {
	for _, cx := range c.complexes() {
		if cx.Name == name {
			return cx, true
		}
	}
	for _, cx := range c.complexes() {
		if cx.Shortcut == name {
			return cx, true
		}
	}
	return Complex{}, false
}

func orDefault(list, def []string) []string {
	if list == nil {
		return def
	}
	return list
}

// matchAny reports whether name matches one of the patterns or names in
// list (shell wildcards as Grid Engine allows in queue and PE requests).
func matchAny(pattern string, list []string) bool {
	for _, n := range list {
		if ok, err := path.Match(pattern, n); err == nil && ok {
			return true
		}
		if pattern == n {
			return true
		}
	}
	return false
}

// Validate checks a parsed job the way Grid Engine's qmaster does when it
// accepts a submission, and completes it: resource shortcuts become full
// names, time values seconds, and the typed limits of Resources are set. A
// refused job yields a KindRejected *Error with qmaster's message.
func (c Cluster) Validate(spec *JobSpec) error {
	if !spec.Binary && strings.IndexByte(string(spec.Script), 0) >= 0 {
		return rejectErr("Script length does not match declared length")
	}
	if err := VerifyJobName(spec.Name); err != nil {
		return err
	}
	if spec.Array != nil {
		for _, id := range []int{spec.Array.First, spec.Array.Last} {
			if id <= 0 {
				return rejectErr(fmt.Sprintf("job rejected: %d is an invalid task id", id))
			}
		}
		limit := c.MaxArrayTasks
		if limit == 0 {
			limit = DefaultMaxArrayTasks
		}
		if limit > 0 && spec.Array.Count() > limit {
			return rejectErr(fmt.Sprintf("job rejected: You try to submit a job with more than %d tasks", limit))
		}
	}
	hard, err := c.checkRequests(spec.Resources.Hard)
	if err != nil {
		return err
	}
	soft, err := c.checkRequests(spec.Resources.Soft)
	if err != nil {
		return err
	}
	spec.Resources.Hard, spec.Resources.Soft = hard, soft
	if err := fillLimits(&spec.Resources); err != nil {
		return err
	}
	if spec.PE != nil && !matchAny(spec.PE.Name, orDefault(c.PEs, DefaultPEs)) {
		return rejectErr(fmt.Sprintf("job rejected: the requested parallel environment \"%s\" does not exist", spec.PE.Name))
	}
	for _, list := range [][]string{spec.Queues, spec.SoftQueues, spec.MasterQueues} {
		for _, q := range list {
			if !c.queueExists(q) {
				return rejectErr(fmt.Sprintf("Job was rejected because job requests unknown queue \"%s\"", q))
			}
		}
	}
	if spec.Project != "" && !matchAny(spec.Project, c.Projects) {
		return rejectErr(fmt.Sprintf("job rejected: the requested project \"%s\" does not exist", spec.Project))
	}
	return nil
}

func (c Cluster) queueExists(q string) bool {
	cq, host, hasHost := strings.Cut(q, "@")
	if !matchAny(cq, orDefault(c.Queues, DefaultQueues)) {
		return false
	}
	if !hasHost || c.Hosts == nil || strings.HasPrefix(host, "@") {
		return true
	}
	return matchAny(host, c.Hosts)
}

// checkRequests resolves shortcuts, checks every request's name and value
// type, drops duplicates (the later request wins) and normalises time
// values to seconds.
func (c Cluster) checkRequests(reqs []Request) ([]Request, error) {
	var out []Request
	for _, r := range reqs {
		cx, ok := c.Complex(r.Name)
		if !ok {
			return nil, rejectErr(fmt.Sprintf("unknown resource \"%s\"", r.Name))
		}
		if !cx.Requestable {
			return nil, rejectErr(fmt.Sprintf("resource \"%s\" configured as non requestable", cx.Name))
		}
		value := r.Value
		if value == "" {
			if cx.Type != TypeBool {
				return nil, rejectErr(fmt.Sprintf("denied: missing value for request \"%s\"", cx.Name))
			}
			value = "TRUE"
		}
		switch cx.Type {
		case TypeTime:
			d, inf, err := ParseTime(value)
			if err != nil {
				return nil, rejectErr(fmt.Sprintf("attribute \"%s\" is not a time value", cx.Name))
			}
			if !inf {
				value = strconv.FormatInt(int64(d/time.Second), 10)
			}
		case TypeMemory:
			if _, _, err := ParseMemory(value); err != nil {
				return nil, rejectErr(fmt.Sprintf("attribute \"%s\" is not a memory value", cx.Name))
			}
		case TypeInt:
			if v, _, ok := parseNumValue(value); !ok || v != math.Trunc(v) {
				return nil, rejectErr(fmt.Sprintf("attribute \"%s\" is not an integer value", cx.Name))
			}
		case TypeDouble:
			if _, _, ok := parseNumValue(value); !ok {
				return nil, rejectErr(fmt.Sprintf("attribute \"%s\" is not a double value", cx.Name))
			}
		case TypeBool:
			switch strings.ToLower(value) {
			case "true", "false", "1", "0", "t", "f", "y", "n", "yes", "no":
			default:
				return nil, rejectErr(fmt.Sprintf("attribute \"%s\" is not a boolean value", cx.Name))
			}
		case TypeHost:
			if c.Hosts != nil && !strings.ContainsAny(value, "*?[") && !matchAny(value, c.Hosts) {
				return nil, rejectErr(fmt.Sprintf("can't resolve hostname \"%s\"", value))
			}
		}
		q := Request{Name: cx.Name, Value: value}
		replaced := false
		for i := range out {
			if out[i].Name == q.Name {
				out[i] = q
				replaced = true
			}
		}
		if !replaced {
			out = append(out, q)
		}
	}
	return out, nil
}

// fillLimits sets the typed limits of Resources from the checked hard
// requests.
func fillLimits(r *Resources) error {
	// Soft requests are scheduling hints, not limits.
	for _, q := range r.Hard {
		switch q.Name {
		case "h_rt", "s_rt", "h_cpu":
			d, inf, err := ParseTime(q.Value)
			if err != nil {
				return rejectErr(fmt.Sprintf("attribute \"%s\" is not a time value", q.Name))
			}
			if inf {
				d = 0
			}
			switch q.Name {
			case "h_rt":
				r.HardRuntime = d
			case "s_rt":
				r.SoftRuntime = d
			default:
				r.HardCPU = d
			}
		case "h_vmem", "s_vmem", "mem_free":
			b, inf, err := ParseMemory(q.Value)
			if err != nil {
				return rejectErr(fmt.Sprintf("attribute \"%s\" is not a memory value", q.Name))
			}
			if inf {
				b = 0
			}
			switch q.Name {
			case "h_vmem":
				r.HardVmem = b
			case "s_vmem":
				r.SoftVmem = b
			default:
				r.MemFree = b
			}
		}
	}
	return nil
}

// keyChars are the characters qmaster refuses in a job name, with the
// names its messages give them (verify_str_key's QSUB_TABLE).
var keyChars = []struct {
	c    byte
	name string
}{
	{'\n', "Return"}, {'\t', "Tabulator"}, {'\r', "Carriage return"},
	{'/', "Slash"}, {':', "Colon"}, {'@', "At"}, {'\\', "Backslash"},
	{'*', "Asterisk"}, {'?', "Question mark"},
}

// VerifyJobName checks a job name the way qmaster does and returns its
// rejection.
func VerifyJobName(name string) error {
	if name == "" {
		return rejectErr("empty string argument to -N option invalid")
	}
	if name[0] >= '0' && name[0] <= '9' {
		return rejectErr(fmt.Sprintf("denied: \"%s\" is not a valid object name (cannot start with a digit)", name))
	}
	for _, k := range keyChars {
		if strings.IndexByte(name, k.c) >= 0 {
			if k.c >= ' ' {
				return rejectErr(fmt.Sprintf("%s ('%c') not allowed in objectname", k.name, k.c))
			}
			return rejectErr(k.name + " not allowed in objectname")
		}
	}
	for _, kw := range []string{"NONE", "ALL", "TEMPLATE"} {
		if strings.EqualFold(name, kw) {
			return rejectErr(fmt.Sprintf("Keyword (\"%s\") not allowed as objectname", name))
		}
	}
	if strings.ContainsAny(name, " \v\f") {
		// qmaster accepts the name but cannot spool the job; its answer
		// list is lost and qsub reports this.
		return rejectErr("Error reading answer list from qmaster")
	}
	return nil
}
