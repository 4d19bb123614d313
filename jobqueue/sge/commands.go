package sge

import (
	"fmt"
	"strings"
)

// This file parses the command lines of qstat, qdel, qhold, qrls, qalter,
// qhost and qacct. Each parser returns the selected options or an *Error
// with Grid Engine's message and exit code; "-help" is reported through the
// options (print HelpText and exit 0).

// QstatOptions are the options of qstat.
type QstatOptions struct {
	Help bool
	// Ext, Urgency and Priority are -ext, -urg and -pri.
	Ext, Urgency, Priority bool
	// Explain is -explain a|c|A|E.
	Explain string
	// Full is -f (or -F); FullResources are the attributes of -F.
	Full          bool
	FullResources []string
	// GroupBy is -g c|d|t.
	GroupBy string
	// JobInfo is -j; Jobs its job_identifier_list (empty: all jobs'
	// scheduler information).
	JobInfo bool
	Jobs    []string
	// Resources is -l.
	Resources []Request
	// NoEmpty is -ne, NoBinding -ncb.
	NoEmpty, NoBinding bool
	// PEs is -pe, Queues is -q, QueueStates is -qs.
	PEs         []string
	Queues      []string
	QueueStates string
	// ShowRequests is -r.
	ShowRequests bool
	// States is -s (p r s z hu ho hs hd hj ha h a).
	States string
	// Tasks is -t.
	Tasks bool
	// Users is -u; without -u qstat shows the caller's jobs only. "*"
	// selects every user.
	Users []string
	// QueueUsers is -U.
	QueueUsers []string
	// XML is -xml.
	XML bool
}

// ParseQstat parses qstat's arguments; user is the caller (the default -u).
func ParseQstat(args []string, user string) (QstatOptions, error) {
	var o QstatOptions
	usersSet := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		optional := func() (string, bool) {
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				return args[i], true
			}
			return "", false
		}
		required := func() (string, error) {
			if i+1 >= len(args) {
				return "", usageTextErr("qstat", fmt.Sprintf("ERROR! %s option must have argument", a))
			}
			i++
			return args[i], nil
		}
		bad := func(v string) error {
			return usageTextErr("qstat", fmt.Sprintf("invalid option argument \"%s\"", v))
		}
		var v string
		var err error
		switch a {
		case "-help":
			o.Help = true
		case "-ext":
			o.Ext = true
		case "-urg":
			o.Urgency = true
		case "-pri":
			o.Priority = true
		case "-f":
			o.Full = true
		case "-F":
			o.Full = true
			if v, ok := optional(); ok {
				o.FullResources = splitList(v)
			}
		case "-ne":
			o.NoEmpty = true
		case "-ncb":
			o.NoBinding = true
		case "-r":
			o.ShowRequests = true
		case "-t":
			o.Tasks = true
		case "-xml":
			o.XML = true
		case "-j":
			o.JobInfo = true
			if v, ok := optional(); ok {
				o.Jobs = append(o.Jobs, splitList(v)...)
			}
		case "-explain":
			if v, err = required(); err != nil {
				return o, err
			}
			if len(v) != 1 || !strings.Contains("acAE", v) {
				return o, bad(v)
			}
			o.Explain = v
			o.Full = true
		case "-g":
			if v, err = required(); err != nil {
				return o, err
			}
			if v != "c" && v != "d" && v != "t" {
				return o, bad(v)
			}
			o.GroupBy += v
		case "-l":
			if v, err = required(); err != nil {
				return o, err
			}
			reqs, ok := parseResourceList(v)
			if !ok {
				return o, bad(v)
			}
			o.Resources = append(o.Resources, reqs...)
		case "-pe":
			if v, err = required(); err != nil {
				return o, err
			}
			o.PEs = append(o.PEs, splitList(v)...)
		case "-q":
			if v, err = required(); err != nil {
				return o, err
			}
			o.Queues = append(o.Queues, splitList(v)...)
		case "-qs":
			if v, err = required(); err != nil {
				return o, err
			}
			for _, c := range v {
				if !strings.ContainsRune("acdosuACDES", c) {
					return o, bad(v)
				}
			}
			o.QueueStates = v
		case "-s":
			if v, err = required(); err != nil {
				return o, err
			}
			if !validStateFilter(v) {
				return o, bad(v)
			}
			o.States += v
		case "-u":
			if v, err = required(); err != nil {
				return o, err
			}
			o.Users = append(o.Users, splitList(v)...)
			usersSet = true
		case "-U":
			if v, err = required(); err != nil {
				return o, err
			}
			o.QueueUsers = append(o.QueueUsers, splitList(v)...)
		default:
			return o, bad(a)
		}
	}
	if !usersSet && user != "" && !o.JobInfo {
		o.Users = []string{user}
	}
	return o, nil
}

func validStateFilter(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 'p', 'r', 's', 'z', 'a':
		case 'h':
			if i+1 < len(s) && strings.IndexByte("uosdja", s[i+1]) >= 0 {
				i++
			}
		default:
			return false
		}
	}
	return true
}

// JobTaskRef is one entry of a job_task_list: a job id, name or pattern,
// optionally restricted to a task range ("17124.4", "17124 -t 2-3").
type JobTaskRef struct {
	Job   string     `json:"job"`
	Tasks *TaskRange `json:"tasks,omitempty"`
}

// String prints the reference as given ("17124", "17124.2-3:1").
func (r JobTaskRef) String() string {
	if r.Tasks == nil {
		return r.Job
	}
	return r.Job + "." + r.Tasks.String()
}

// parseJobTask parses one word of a job_task_list: "id", "id.range",
// "name" or a pattern; a comma-separated word yields several entries.
func parseJobTask(cmd, word string) ([]JobTaskRef, error) {
	var out []JobTaskRef
	for _, item := range strings.Split(word, ",") {
		if item == "" {
			continue
		}
		id, tasks, hasTasks := strings.Cut(item, ".")
		if hasTasks && isDigits(id) {
			r, err := ParseTaskRange(tasks)
			if err != nil {
				return nil, usageTextErr(cmd, fmt.Sprintf("ERROR! %s is a invalid job-task identifier", item))
			}
			out = append(out, JobTaskRef{Job: id, Tasks: &r})
			continue
		}
		out = append(out, JobTaskRef{Job: item})
	}
	return out, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseJobTaskList parses the job_task_list words of qdel, qhold and qrls;
// "-t range" applies to the entries of the word before it.
func parseJobTaskList(cmd string, words []string, i *int, refs *[]JobTaskRef) error {
	w := words[*i]
	if w == "-t" {
		if *i+1 >= len(words) {
			return usageTextErr(cmd, "ERROR! -t option must have argument")
		}
		*i++
		if len(*refs) == 0 {
			return usageTextErr(cmd, fmt.Sprintf("ERROR! %s is a invalid job-task identifier", words[*i]))
		}
		r, err := ParseTaskRange(words[*i])
		if err != nil {
			return usageTextErr(cmd, fmt.Sprintf("ERROR! %s is a invalid job-task identifier", words[*i]))
		}
		(*refs)[len(*refs)-1].Tasks = &r
		return nil
	}
	got, err := parseJobTask(cmd, w)
	if err != nil {
		return err
	}
	*refs = append(*refs, got...)
	return nil
}

// QdelOptions are the options of qdel.
type QdelOptions struct {
	Help  bool
	Force bool
	// Users is -u: delete all jobs of these users.
	Users []string
	// Jobs is the job_task_list.
	Jobs []JobTaskRef
}

// ParseQdel parses qdel's arguments.
func ParseQdel(args []string) (QdelOptions, error) {
	var o QdelOptions
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-help":
			o.Help = true
		case a == "-f":
			o.Force = true
		case a == "-u":
			if i+1 >= len(args) {
				return o, usageTextErr("qdel", "ERROR! -u option must have argument")
			}
			i++
			o.Users = append(o.Users, splitList(args[i])...)
		case a == "-t" || !strings.HasPrefix(a, "-"):
			if err := parseJobTaskList("qdel", args, &i, &o.Jobs); err != nil {
				return o, err
			}
		default:
			return o, usageTextErr("qdel", fmt.Sprintf("invalid option argument \"%s\"", a))
		}
	}
	if !o.Help && len(o.Jobs) == 0 && len(o.Users) == 0 {
		return o, usageTextErr("qdel", "ERROR! no option argument")
	}
	return o, nil
}

// QholdOptions are the options of qhold and qrls.
type QholdOptions struct {
	Help bool
	// Holds are the hold types of -h (u, s, o); default "u".
	Holds string
	// Users is -u.
	Users []string
	Jobs  []JobTaskRef
}

// ParseQhold parses the arguments of qhold or qrls (cmd names which).
func ParseQhold(cmd string, args []string) (QholdOptions, error) {
	o := QholdOptions{}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-help":
			o.Help = true
		case a == "-h":
			if i+1 >= len(args) {
				return o, usageTextErr(cmd, "ERROR! -h option must have argument")
			}
			i++
			if !validHoldList(args[i], false) {
				return o, usageTextErr(cmd, fmt.Sprintf("ERROR! Unknown hold list \"%s\" specified to -h option", args[i]))
			}
			o.Holds = args[i]
		case a == "-u":
			if i+1 >= len(args) {
				return o, usageTextErr(cmd, "ERROR! -u option must have argument")
			}
			i++
			o.Users = append(o.Users, splitList(args[i])...)
		case a == "-t" || !strings.HasPrefix(a, "-"):
			if err := parseJobTaskList(cmd, args, &i, &o.Jobs); err != nil {
				return o, err
			}
		default:
			return o, usageTextErr(cmd, fmt.Sprintf("invalid option argument \"%s\"", a))
		}
	}
	if o.Holds == "" {
		o.Holds = "u"
	}
	if !o.Help && len(o.Jobs) == 0 && len(o.Users) == 0 {
		return o, usageTextErr(cmd, "ERROR! no option argument")
	}
	return o, nil
}

// QhostOptions are the options of qhost.
type QhostOptions struct {
	Help bool
	// FullResources is -F, ResourceNames its optional attribute list.
	FullResources bool
	ResourceNames []string
	// Hosts is -h: show only these hosts.
	Hosts []string
	// Jobs is -j (jobs under each host), Queues -q (queues under each host).
	Jobs, Queues bool
	// Requests is -l: show only hosts offering these resources.
	Requests []Request
	// NoBinding is -ncb, XML -xml.
	NoBinding, XML bool
	// Users is -u: show only these users' jobs.
	Users []string
}

// ParseQhost parses qhost's arguments.
func ParseQhost(args []string) (QhostOptions, error) {
	var o QhostOptions
	for i := 0; i < len(args); i++ {
		a := args[i]
		required := func() (string, error) {
			if i+1 >= len(args) {
				return "", usageTextErr("qhost", fmt.Sprintf("ERROR! %s option must have argument", a))
			}
			i++
			return args[i], nil
		}
		switch a {
		case "-help":
			o.Help = true
		case "-F":
			o.FullResources = true
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				o.ResourceNames = splitList(args[i])
			}
		case "-h":
			v, err := required()
			if err != nil {
				return o, err
			}
			o.Hosts = append(o.Hosts, splitList(v)...)
		case "-j":
			o.Jobs = true
		case "-q":
			o.Queues = true
		case "-l":
			v, err := required()
			if err != nil {
				return o, err
			}
			reqs, ok := parseResourceList(v)
			if !ok {
				return o, usageTextErr("qhost", fmt.Sprintf("invalid option argument \"%s\"", v))
			}
			o.Requests = append(o.Requests, reqs...)
		case "-ncb":
			o.NoBinding = true
		case "-u":
			v, err := required()
			if err != nil {
				return o, err
			}
			o.Users = append(o.Users, splitList(v)...)
		case "-xml":
			o.XML = true
		default:
			return o, usageTextErr("qhost", fmt.Sprintf("invalid option argument \"%s\"", a))
		}
	}
	return o, nil
}

// QacctOptions are the options of qacct.
type QacctOptions struct {
	Help bool
	// Job is -j: a job id, name or pattern ("" with JobAll: every job).
	Job    string
	JobAll bool
	// Owner is -o/-u; OwnerAll lists per owner.
	Owner    string
	OwnerAll bool
	// Queue is -q; QueueAll lists per queue. Host, Group, Project,
	// Department, PE likewise.
	Queue, Host, Group, Project, Department, PE string
	QueueAll, HostAll, GroupAll, ProjectAll     bool
	DepartmentAll, PEAll                        bool
	// Tasks is -t (requires -j).
	Tasks *TaskRange
	// Days is -d, File is -f, Account -A, Requests -l.
	Days     int
	File     string
	Account  string
	Requests []Request
	// Begin and End are -b and -e as given ([[CC]YY]MMDDhhmm[.SS]).
	Begin, End string
	// EndTime is -E.
	EndTime bool
}

// ParseQacct parses qacct's arguments. Like Grid Engine, options whose
// argument is optional take the next word unless it starts with '-'; an
// unknown option prints the usage to stderr and exits 1.
func ParseQacct(args []string) (QacctOptions, error) {
	var o QacctOptions
	bad := usageTextErr("qacct", "")
	for i := 0; i < len(args); i++ {
		a := args[i]
		optional := func(val *string, all *bool) {
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				*val = args[i]
				return
			}
			*all = true
		}
		switch a {
		case "-help":
			o.Help = true
		case "-j":
			optional(&o.Job, &o.JobAll)
		case "-o", "-u":
			optional(&o.Owner, &o.OwnerAll)
		case "-q":
			optional(&o.Queue, &o.QueueAll)
		case "-h":
			optional(&o.Host, &o.HostAll)
		case "-g":
			optional(&o.Group, &o.GroupAll)
		case "-P":
			optional(&o.Project, &o.ProjectAll)
		case "-D":
			optional(&o.Department, &o.DepartmentAll)
		case "-pe":
			optional(&o.PE, &o.PEAll)
		case "-slots", "-ar":
			var v string
			var all bool
			optional(&v, &all)
		case "-t":
			if i+1 >= len(args) || strings.HasPrefix(args[i+1], "-") {
				return o, usageTextErr("qacct", "ERROR! -t option must have a list of task id ranges")
			}
			i++
			r, err := ParseTaskRange(args[i])
			if err != nil {
				return o, usageTextErr("qacct", fmt.Sprintf("ERROR! invalid list of task id ranges \"%s\"", args[i]))
			}
			o.Tasks = &r
		case "-d", "-b", "-e", "-f", "-A", "-l":
			if i+1 >= len(args) {
				return o, bad
			}
			i++
			switch a {
			case "-d":
				n, ok := parseUint(args[i])
				if !ok {
					return o, bad
				}
				o.Days = n
			case "-b":
				o.Begin = args[i]
			case "-e":
				o.End = args[i]
			case "-f":
				o.File = args[i]
			case "-A":
				o.Account = args[i]
			case "-l":
				reqs, ok := parseResourceList(args[i])
				if !ok {
					return o, bad
				}
				o.Requests = reqs
			}
		case "-E":
			o.EndTime = true
		default:
			return o, bad
		}
	}
	return o, nil
}

// QalterRequest is a parsed qalter command line: the jobs to change and
// the changes, as a partial JobSpec with the options that were given.
type QalterRequest struct {
	Help bool
	// Jobs is the job_task_list; Users is -u (all jobs of these users).
	Jobs  []JobTaskRef
	Users []string
	// Changes holds the new values; only the fields of the options named
	// in Set are meaningful.
	Changes JobSpec
	// Set names the options given, in order ("-N", "-l", "-hold_jid", ...).
	Set []string
	// Holds is -h (qalter's hold list, e.g. "u", "n").
	Holds string
	// Warnings are "qalter: warning: ..." lines.
	Warnings []string
}

// ParseQalter parses qalter's arguments with the option parser qsub uses
// (Grid Engine shares it), sub being the caller's context (for -V, -v and
// -cwd).
func ParseQalter(args []string, sub Submitter) (*QalterRequest, error) {
	completeSubmitter(&sub)
	p := &optParser{prog: "qalter", sub: &sub}
	var list []opt
	if e := p.parse(args, true, &list); e != nil {
		return nil, usageErr("qalter", e.status, e.msg)
	}
	req := &QalterRequest{}
	for _, w := range p.warnings {
		req.Warnings = append(req.Warnings, "qalter: warning: "+w)
	}
	if hasOpt(list, "-help") {
		req.Help = true
		return req, nil
	}
	var changes []opt
	for _, o := range list {
		switch o.name {
		case optJobID:
			for _, id := range o.list {
				refs, err := parseJobTask("qalter", id)
				if err != nil {
					return nil, usageErr("qalter", statusESyntax, fmt.Sprintf("Wrong job id list format \"%s\" specified", o.arg))
				}
				req.Jobs = append(req.Jobs, refs...)
			}
		case "-u":
			req.Users = append(req.Users, o.list...)
		case "-h":
			req.Holds = o.str
			req.Set = append(req.Set, "-h")
		case optJobArg, "-hard", "-soft", "-verify", "-clear":
			changes = append(changes, o)
			if o.name == optJobArg {
				req.Set = appendNew(req.Set, "<args>")
			}
		case "-t", "-terse", "-sync", "-now", "-C", "-@", "-cat", "-cell", "-display", "-pty",
			"-explain", "-xml", "-verbose", "-inherit", "-nostdin", "-noshell", "-uall", "-d", "-jsv", "-i":
			msg := "Unknown option " + o.name
			if o.arg != "" {
				msg += " " + o.arg
			}
			return nil, usageErr("qalter", statusENoImp, msg)
		default:
			changes = append(changes, o)
			req.Set = appendNew(req.Set, o.name)
		}
	}
	if len(req.Jobs) == 0 && len(req.Users) == 0 {
		return nil, usageTextErr("qalter", "ERROR! no option argument")
	}
	spec, err := buildJobSpec(append(changes, opt{name: optScript, str: "qalter"}), &sub, false)
	if err != nil {
		var e *Error
		if asError(err, &e) {
			e.Command = "qalter"
		}
		return nil, err
	}
	spec.Env = nil
	for _, o := range changes {
		if o.name == "-v" || o.name == "-V" {
			spec.Env = mergeVars(spec.Env, o.vars)
		}
	}
	spec.ScriptFile = ""
	req.Changes = spec
	return req, nil
}

// ApplyQalter applies the changes of a qalter request to a job and returns
// the attribute names Grid Engine reports as modified ("job name", "hard
// resource list", ...), in order. The hold list is reported as
// "job id hold list"; FormatQalterMessage words each.
func ApplyQalter(job *JobSpec, req *QalterRequest) []string {
	var changed []string
	c := &req.Changes
	note := func(what string) { changed = appendNew(changed, what) }
	for _, name := range req.Set {
		switch name {
		case "-N":
			job.Name = c.Name
			note("job name")
		case "-l":
			job.Resources = c.Resources
			note("hard resource list")
		case "-p":
			job.Priority = c.Priority
			note("priority")
		case "-hold_jid":
			job.HoldJobs = c.HoldJobs
			note("job id hold list")
		case "-hold_jid_ad":
			job.HoldArrayJobs = c.HoldArrayJobs
			note("job id hold array list")
		case "-h":
			job.UserHold = strings.Contains(req.Holds, "u")
			note("hold")
		case "-o":
			job.Stdout = c.Stdout
			note("stdout path list")
		case "-e":
			job.Stderr = c.Stderr
			note("stderr path list")
		case "-j":
			job.Join = c.Join
			note("output merge behaviour")
		case "-tc":
			job.TaskConcurrency = c.TaskConcurrency
			note("task concurrency")
		case "-q":
			job.Queues, job.SoftQueues = c.Queues, c.SoftQueues
			note("hard queue list")
		case "-masterq":
			job.MasterQueues = c.MasterQueues
			note("master hard queue list")
		case "-pe":
			job.PE = c.PE
			note("slot range")
		case "-A":
			job.Account = c.Account
			note("account")
		case "-a":
			job.StartTime = c.StartTime
			note("start time")
		case "-dl":
			job.Deadline = c.Deadline
			note("deadline")
		case "-r":
			job.Rerun = c.Rerun
			note("restart behaviour")
		case "-R":
			job.Reserve = c.Reserve
			note("reservation behaviour")
		case "-m":
			job.MailOptions = c.MailOptions
			note("mail options")
		case "-M":
			job.MailList = c.MailList
			note("mail list")
		case "-notify":
			job.Notify = true
			note("notify behaviour")
		case "-S":
			job.Shell = c.Shell
			note("shell list")
		case "-v", "-V":
			job.Env = mergeVars(job.Env, c.Env)
			note("environment")
		case "-P":
			job.Project = c.Project
			note("project")
		case "-wd":
			job.Cwd = c.Cwd
			note("working directory")
		case "-ac", "-dc", "-sc":
			job.Context = c.Context
			note("context")
		case "-js":
			job.JobShare = c.JobShare
			note("job share")
		case "-ot":
			job.OverrideTickets = c.OverrideTickets
			note("override tickets")
		case "-ckpt", "-c":
			job.Checkpoint, job.CheckpointWhen = c.Checkpoint, c.CheckpointWhen
			note("checkpoint")
		case "-binding":
			job.Binding = c.Binding
			note("binding")
		case "-w":
			job.Verify = c.Verify
			note("verify")
		case "<args>":
			job.Args = c.Args
			note("script arguments")
		}
	}
	return changed
}
