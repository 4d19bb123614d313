package sge

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

const (
	jobSeparator   = "=============================================================="
	detailXMLNS    = `xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/detailed_job_info.xsd"`
	basePriority   = 1024
	jobTypeBinary  = 0x40
	jobTypeArray   = 0x80
	jobTypeNoShell = 0x100
)

// WriteJobDetails writes qstat -j for each job, times in loc.
func WriteJobDetails(w io.Writer, jobs []JobDetail, loc *time.Location) error {
	out := newWriter(w)
	for i := range jobs {
		out.line(jobSeparator)
		writeJobDetail(out, &jobs[i], loc)
	}
	return out.flush()
}

// WriteVerify writes what qsub -verify prints instead of submitting: the
// job as it would be submitted, with no job number yet.
func WriteVerify(w io.Writer, spec *JobSpec, loc *time.Location) error {
	out := newWriter(w)
	writeJobDetail(out, &JobDetail{Spec: *spec}, loc)
	return out.flush()
}

// WriteSchedulingInfo writes the answer of qstat -j without a job list:
// the scheduler's global messages.
func WriteSchedulingInfo(w io.Writer, lines []string) error {
	out := newWriter(w)
	writeMultiline(out, "scheduling info:", lines)
	return out.flush()
}

func kv(out *writer, label, value string) {
	out.line(left(label, 28) + value)
}

func writeMultiline(out *writer, label string, lines []string) {
	for i, l := range lines {
		if i == 0 {
			kv(out, label, l)
		} else {
			kv(out, "", l)
		}
	}
}

// pathListString prints a path list as qstat -j does: host:file_host:path
// entries ("NONE" for no host), comma-separated.
func pathListString(paths []PathSpec) string {
	parts := make([]string, len(paths))
	for i, p := range paths {
		host := p.Host
		if host == "" {
			host = "NONE"
		}
		parts[i] = host + ":NONE:" + p.Path
	}
	return strings.Join(parts, ",")
}

func shellListString(paths []PathSpec) string {
	parts := make([]string, len(paths))
	for i, p := range paths {
		host := p.Host
		if host == "" {
			host = "NONE"
		}
		parts[i] = host + ":" + p.Path
	}
	return strings.Join(parts, ",")
}

func requestsString(reqs []Request) string {
	parts := make([]string, len(reqs))
	for i, r := range reqs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

func varsString(vars []EnvVar) string {
	parts := make([]string, len(vars))
	for i, v := range vars {
		val := v.Value
		if v.Unset {
			val = "NONE"
		}
		parts[i] = v.Name + "=" + val
	}
	return strings.Join(parts, ",")
}

// jobEnv is the job's environment list as Grid Engine keeps it: TERM first
// (always present), then the -v/-V variables.
func jobEnv(spec *JobSpec) []EnvVar {
	for _, v := range spec.Env {
		if v.Name == "TERM" {
			return spec.Env
		}
	}
	return append([]EnvVar{{Name: "TERM", Unset: true}}, spec.Env...)
}

func yn(b bool) string {
	if b {
		return "y"
	}
	return "n"
}

func verifyLevel(v string) int {
	return map[string]int{"e": 1, "w": 2, "v": 3, "p": 4}[v]
}

func jobTypeString(spec *JobSpec) string {
	var parts []string
	if spec.Binary {
		parts = append(parts, "binary")
	}
	if spec.NoShell {
		parts = append(parts, "noshell")
	}
	if len(parts) == 0 {
		return "NONE"
	}
	return strings.Join(parts, ",")
}

func writeJobDetail(out *writer, d *JobDetail, loc *time.Location) {
	s := &d.Spec
	sub := &s.Submitter
	if d.ID == 0 {
		kv(out, "job_number:", "unassigned")
	} else {
		kv(out, "job_number:", strconv.FormatInt(d.ID, 10))
		kv(out, "exec_file:", "job_scripts/"+strconv.FormatInt(d.ID, 10))
	}
	if !d.SubmitTime.IsZero() {
		kv(out, "submission_time:", in(d.SubmitTime, loc).Format(ctimeLayout))
	}
	if !s.Deadline.IsZero() {
		kv(out, "deadline:", in(s.Deadline, loc).Format(ctimeLayout))
	}
	kv(out, "owner:", sub.User)
	kv(out, "uid:", strconv.Itoa(sub.UID))
	kv(out, "group:", sub.Group)
	kv(out, "gid:", strconv.Itoa(sub.GID))
	for _, f := range []struct{ label, value string }{
		{"sge_o_home:", sub.Home}, {"sge_o_log_name:", sub.LogName}, {"sge_o_path:", sub.Path},
		{"sge_o_shell:", sub.Shell}, {"sge_o_tz:", sub.TZ}, {"sge_o_workdir:", sub.Cwd},
		{"sge_o_host:", sub.Host},
	} {
		if f.value != "" {
			kv(out, f.label, f.value)
		}
	}
	if !s.StartTime.IsZero() {
		kv(out, "execution_time:", in(s.StartTime, loc).Format(ctimeLayout))
	}
	if s.Account != "" {
		kv(out, "account:", s.Account)
	}
	if s.Checkpoint != "" {
		kv(out, "checkpoint_object:", s.Checkpoint)
	}
	if s.Cwd != "" {
		kv(out, "cwd:", s.Cwd)
	}
	if len(s.Stderr) > 0 {
		kv(out, "stderr_path_list:", pathListString(s.Stderr))
	}
	if s.Reserve {
		kv(out, "reserve:", "y")
	}
	if s.Join {
		kv(out, "merge:", "y")
	}
	if len(s.Resources.Hard) > 0 {
		kv(out, "hard resource_list:", requestsString(s.Resources.Hard))
	}
	if len(s.Resources.Soft) > 0 {
		kv(out, "soft resource_list:", requestsString(s.Resources.Soft))
	}
	if s.MailOptions != "" && s.MailOptions != "n" {
		kv(out, "mail_options:", s.MailOptions)
	}
	if len(s.MailList) > 0 {
		kv(out, "mail_list:", strings.Join(s.MailList, ","))
	}
	kv(out, "notify:", map[bool]string{true: "TRUE", false: "FALSE"}[s.Notify])
	kv(out, "job_name:", s.Name)
	if len(s.Stdout) > 0 {
		kv(out, "stdout_path_list:", pathListString(s.Stdout))
	}
	if len(s.Stdin) > 0 {
		kv(out, "stdin_path_list:", pathListString(s.Stdin))
	}
	if s.Priority != 0 {
		kv(out, "priority:", strconv.Itoa(s.Priority))
	}
	kv(out, "jobshare:", strconv.Itoa(s.JobShare))
	if len(s.Queues) > 0 {
		kv(out, "hard_queue_list:", strings.Join(s.Queues, ","))
	}
	if len(s.SoftQueues) > 0 {
		kv(out, "soft_queue_list:", strings.Join(s.SoftQueues, ","))
	}
	if s.Rerun != nil {
		kv(out, "restart:", yn(*s.Rerun))
	}
	if len(s.Shell) > 0 {
		kv(out, "shell_list:", shellListString(s.Shell))
	}
	if s.VerifyOnly {
		kv(out, "verify:", "-verify")
	}
	kv(out, "env_list:", varsString(jobEnv(s)))
	if len(s.Args) > 0 {
		kv(out, "job_args:", strings.Join(s.Args, ","))
	}
	if len(s.MasterQueues) > 0 {
		kv(out, "master hard queue_list:", strings.Join(s.MasterQueues, ","))
	}
	kv(out, "script_file:", s.ScriptFile)
	if s.PE != nil {
		out.line("parallel environment:  " + s.PE.Name + " range: " + s.PE.RangeString())
	}
	if len(s.HoldJobs) > 0 {
		kv(out, "jid_predecessor_list (req):", strings.Join(s.HoldJobs, ","))
	}
	if len(d.Predecessors) > 0 {
		kv(out, "jid_predecessor_list:", joinIDs(d.Predecessors, ","))
	}
	if len(d.Successors) > 0 {
		kv(out, "jid_successor_list:", joinIDs(d.Successors, ","))
	}
	if lvl := verifyLevel(s.Verify); lvl != 0 {
		kv(out, "verify_suitable_queues:", strconv.Itoa(lvl))
	}
	if s.OverrideTickets != 0 {
		kv(out, "oticket:", strconv.Itoa(s.OverrideTickets))
	}
	if s.Project != "" {
		kv(out, "project:", s.Project)
	}
	if s.Array != nil {
		kv(out, "job-array tasks:", s.Array.String())
	}
	if s.TaskConcurrency > 0 {
		kv(out, "task_concurrency:", strconv.Itoa(s.TaskConcurrency))
	}
	if len(s.Context) > 0 {
		kv(out, "context:", varsString(s.Context))
	}
	kv(out, "binding:", bindingOrNone(s.Binding))
	kv(out, "job_type:", jobTypeString(s))
	for i, u := range d.Usage {
		label := "usage"
		if i > 0 {
			label = ""
		}
		vmem, maxvmem := "N/A", "N/A"
		if u.Vmem > 0 {
			vmem = memoryString(float64(u.Vmem))
		}
		if u.MaxVmem > 0 {
			maxvmem = memoryString(float64(u.MaxVmem))
		}
		out.printf("%-7s %7d:            cpu=%s, mem=%-5.5f GB s, io=%-5.5f GB, vmem=%s, maxvmem=%s\n",
			label, u.Task, durationString(u.CPU), u.Mem, u.IO, vmem, maxvmem)
	}
	for i, u := range d.Usage {
		label := "binding"
		if i > 0 {
			label = ""
		}
		out.printf("%-7s %7d:            %s\n", label, u.Task, bindingOrNone(u.Binding))
	}
	for i, e := range d.Errors {
		label := "error reason"
		if i > 0 {
			label = ""
		}
		out.printf("%-12s %10d:      %s\n", label, e.Task, e.Message)
	}
	writeMultiline(out, "scheduling info:", d.SchedulingInfo)
}

// WriteJobDetailsXML writes qstat -j -xml for the jobs, with the
// scheduler's messages of the first job (or global ones) as the messages
// element.
func WriteJobDetailsXML(w io.Writer, jobs []JobDetail, messages []string) error {
	out := newWriter(w)
	out.line(xmlHeader)
	out.line("<detailed_job_info  " + detailXMLNS + ">")
	out.line("  <djob_info>")
	for i := range jobs {
		writeJobDetailXML(out, &jobs[i])
	}
	out.line("  </djob_info>")
	if len(messages) > 0 {
		out.line("  <messages>")
		out.line("    <element>")
		out.line("      <SME_global_message_list>")
		for _, m := range messages {
			num, text := schedulerMessageNumber(m)
			out.line("        <element>")
			out.printf("          <MES_message_number>%d</MES_message_number>\n", num)
			out.line("          <MES_message>" + xmlEscape(text) + "</MES_message>")
			out.line("        </element>")
		}
		out.line("      </SME_global_message_list>")
		out.line("    </element>")
		out.line("  </messages>")
	}
	out.line("</detailed_job_info>")
	return out.flush()
}

// schedulerMessageNumber returns Grid Engine's message number of a known
// scheduler message (0 for others).
func schedulerMessageNumber(m string) (int, string) {
	switch {
	case strings.HasPrefix(m, "queue instance ") && strings.HasSuffix(m, " dropped because it is full"):
		return 37, m
	case m == "All queues dropped because of overload or full":
		return 28, m
	case m == "job dropped because of job dependencies":
		return 1, m
	case m == "Job is in hold state":
		return 2, m
	}
	return 0, m
}

func mailOptionBits(opts string) int {
	bits := 0
	for _, c := range opts {
		switch c {
		case 'a':
			bits |= 0x00040000
		case 'b':
			bits |= 0x00080000
		case 'e':
			bits |= 0x00100000
		case 's':
			bits |= 0x00200000
		}
	}
	return bits
}

func writeJobDetailXML(out *writer, d *JobDetail) {
	s := &d.Spec
	sub := &s.Submitter
	const i3, i4, i5 = "      ", "        ", "          "
	el := func(ind, name, value string) { out.line(ind + "<" + name + ">" + xmlEscape(value) + "</" + name + ">") }
	num := func(ind, name string, v int64) { el(ind, name, strconv.FormatInt(v, 10)) }
	boolS := func(b bool) string { return map[bool]string{true: "true", false: "false"}[b] }
	out.line("    <element>")
	num(i3, "JB_job_number", d.ID)
	num(i3, "JB_ar", 0)
	el(i3, "JB_exec_file", "job_scripts/"+strconv.FormatInt(d.ID, 10))
	num(i3, "JB_submission_time", d.SubmitTime.Unix())
	el(i3, "JB_owner", sub.User)
	num(i3, "JB_uid", int64(sub.UID))
	el(i3, "JB_group", sub.Group)
	num(i3, "JB_gid", int64(sub.GID))
	el(i3, "JB_account", s.Account)
	el(i3, "JB_merge_stderr", boolS(s.Join))
	if len(s.Resources.Hard) > 0 {
		out.line(i3 + "<JB_hard_resource_list>")
		for _, r := range s.Resources.Hard {
			out.line(i4 + "<qstat_l_requests>")
			el(i5, "CE_name", r.Name)
			el(i5, "CE_stringval", r.Value)
			out.line(i4 + "</qstat_l_requests>")
		}
		out.line(i3 + "</JB_hard_resource_list>")
	}
	if len(s.MailList) > 0 {
		out.line(i3 + "<JB_mail_list>")
		for _, m := range s.MailList {
			user, host, _ := strings.Cut(m, "@")
			out.line(i4 + "<element>")
			el(i5, "MR_user", user)
			if host != "" {
				el(i5, "MR_host", host)
			}
			out.line(i4 + "</element>")
		}
		out.line(i3 + "</JB_mail_list>")
	}
	el(i3, "JB_notify", boolS(s.Notify))
	el(i3, "JB_job_name", s.Name)
	if len(s.Stdout) > 0 {
		writePathListXML(out, "JB_stdout_path_list", s.Stdout)
	}
	if len(s.Stderr) > 0 {
		writePathListXML(out, "JB_stderr_path_list", s.Stderr)
	}
	num(i3, "JB_jobshare", int64(s.JobShare))
	out.line(i3 + "<JB_env_list>")
	envVar := func(name, value string, set bool) {
		out.line(i4 + "<job_sublist>")
		el(i5, "VA_variable", name)
		if set {
			el(i5, "VA_value", value)
		}
		out.line(i4 + "</job_sublist>")
	}
	for _, f := range []struct{ name, value string }{
		{"O_HOME", sub.Home}, {"O_LOGNAME", sub.LogName}, {"O_PATH", sub.Path},
		{"O_SHELL", sub.Shell}, {"O_TZ", sub.TZ},
	} {
		if f.value != "" {
			envVar("__SGE_PREFIX__"+f.name, f.value, true)
		}
	}
	env := jobEnv(s)
	for _, v := range env[:1] {
		envVar(v.Name, v.Value, !v.Unset)
	}
	if sub.Host != "" {
		envVar("__SGE_PREFIX__O_HOST", sub.Host, true)
	}
	if sub.Cwd != "" {
		envVar("__SGE_PREFIX__O_WORKDIR", sub.Cwd, true)
	}
	for _, v := range env[1:] {
		envVar(v.Name, v.Value, !v.Unset)
	}
	out.line(i3 + "</JB_env_list>")
	if len(s.Args) > 0 {
		out.line(i3 + "<JB_job_args>")
		for _, a := range s.Args {
			out.line(i4 + "<element>")
			el(i5, "ST_name", a)
			out.line(i4 + "</element>")
		}
		out.line(i3 + "</JB_job_args>")
	}
	el(i3, "JB_script_file", s.ScriptFile)
	if len(d.Usage) > 0 {
		out.line(i3 + "<JB_ja_tasks>")
		for _, u := range d.Usage {
			out.line(i4 + "<ulong_sublist>")
			num(i5, "JAT_status", int64(u.Status))
			num(i5, "JAT_task_number", int64(u.Task))
			if !u.StartTime.IsZero() {
				num(i5, "JAT_start_time", u.StartTime.Unix())
			}
			el(i5, "JAT_ntix", fmt.Sprintf("%f", u.NTix))
			out.line(i4 + "</ulong_sublist>")
		}
		out.line(i3 + "</JB_ja_tasks>")
	}
	if s.Cwd != "" {
		el(i3, "JB_cwd", s.Cwd)
	}
	if s.PE != nil {
		el(i3, "JB_pe", s.PE.Name)
		out.line(i3 + "<JB_pe_range>")
		ranges := s.PE.Ranges
		if len(ranges) == 0 {
			ranges = []SlotRange{{Min: s.PE.Min, Max: s.PE.Max}}
		}
		for _, r := range ranges {
			out.line(i4 + "<ranges>")
			num(i5, "RN_min", int64(r.Min))
			num(i5, "RN_max", int64(r.Max))
			num(i5, "RN_step", 1)
			out.line(i4 + "</ranges>")
		}
		out.line(i3 + "</JB_pe_range>")
	}
	if len(s.HoldJobs) > 0 {
		out.line(i3 + "<JB_jid_request_list>")
		for _, h := range s.HoldJobs {
			out.line(i4 + "<element>")
			el(i5, "JRE_job_name", h)
			out.line(i4 + "</element>")
		}
		out.line(i3 + "</JB_jid_request_list>")
	}
	if len(d.Predecessors) > 0 {
		out.line(i3 + "<JB_jid_predecessor_list>")
		for _, p := range d.Predecessors {
			out.line(i4 + "<ulong_sublist>")
			num(i5, "JRE_job_number", p)
			out.line(i4 + "</ulong_sublist>")
		}
		out.line(i3 + "</JB_jid_predecessor_list>")
	}
	if len(d.Successors) > 0 {
		out.line(i3 + "<JB_jid_successor_list>")
		for _, p := range d.Successors {
			out.line(i4 + "<ulong_sublist>")
			num(i5, "JRE_job_number", p)
			out.line(i4 + "</ulong_sublist>")
		}
		out.line(i3 + "</JB_jid_successor_list>")
	}
	num(i3, "JB_deadline", unixOrZero(s.Deadline))
	num(i3, "JB_execution_time", unixOrZero(s.StartTime))
	num(i3, "JB_checkpoint_attr", 0)
	num(i3, "JB_checkpoint_interval", 0)
	el(i3, "JB_reserve", boolS(s.Reserve))
	num(i3, "JB_mail_options", int64(mailOptionBits(s.MailOptions)))
	num(i3, "JB_priority", int64(basePriority+s.Priority))
	restart := int64(0)
	if s.Rerun != nil {
		restart = 2
		if *s.Rerun {
			restart = 1
		}
	}
	num(i3, "JB_restart", restart)
	num(i3, "JB_verify", map[bool]int64{true: 1, false: 0}[s.VerifyOnly])
	num(i3, "JB_script_size", 0)
	num(i3, "JB_verify_suitable_queues", int64(verifyLevel(s.Verify)))
	num(i3, "JB_soft_wallclock_gmt", 0)
	num(i3, "JB_hard_wallclock_gmt", 0)
	num(i3, "JB_override_tickets", int64(s.OverrideTickets))
	num(i3, "JB_version", 0)
	out.line(i3 + "<JB_ja_structure>")
	out.line(i4 + "<task_id_range>")
	tr := s.Tasks()
	num(i5, "RN_min", int64(tr.First))
	num(i5, "RN_max", int64(tr.Last))
	num(i5, "RN_step", int64(tr.Step))
	out.line(i4 + "</task_id_range>")
	out.line(i3 + "</JB_ja_structure>")
	jobType := 0
	if s.Binary {
		jobType |= jobTypeBinary
	}
	if s.Array != nil {
		jobType |= jobTypeArray
	}
	if s.NoShell {
		jobType |= jobTypeNoShell
	}
	num(i3, "JB_type", int64(jobType))
	out.line(i3 + "<JB_binding>")
	out.line(i4 + "<element>")
	el(i5, "BN_strategy", "no_job_binding")
	el(i5, "BN_type", "0")
	el(i5, "BN_parameter_n", "0")
	el(i5, "BN_parameter_socket_offset", "0")
	el(i5, "BN_parameter_core_offset", "0")
	el(i5, "BN_parameter_striding_step_size", "0")
	el(i5, "BN_parameter_explicit", "no_explicit_binding")
	out.line(i4 + "</element>")
	out.line(i3 + "</JB_binding>")
	num(i3, "JB_ja_task_concurrency", int64(s.TaskConcurrency))
	el(i3, "JB_nurg", fmt.Sprintf("%f", d.NUrg))
	out.line("    </element>")
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func writePathListXML(out *writer, name string, paths []PathSpec) {
	out.line("      <" + name + ">")
	for _, p := range paths {
		out.line("        <path_list>")
		out.line("          <PN_path>" + xmlEscape(p.Path) + "</PN_path>")
		if p.Host != "" {
			out.line("          <PN_host>" + xmlEscape(p.Host) + "</PN_host>")
		}
		out.line("          <PN_file_staging>false</PN_file_staging>")
		out.line("        </path_list>")
	}
	out.line("      </" + name + ">")
}
