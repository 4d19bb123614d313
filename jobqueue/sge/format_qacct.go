package sge

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// failureDescriptions are Grid Engine's texts for the "failed" codes of
// accounting records (get_sstate_description).
var failureDescriptions = map[int]string{
	0: "", 1: "assumedly before job", 2: "on executing shepherd", 3: "before writing config",
	4: "before writing pid", 5: "on reading config file", 6: "setting processor set",
	7: "before prolog", 8: "in prolog", 9: "before pestart", 10: "in pestart",
	11: "before job", 12: "before pestop", 13: "in pestop", 14: "before epilog",
	15: "in epilog", 16: "releasing processor set", 17: "through signal",
	18: "shepherd returned error", 19: "before writing exit_status",
	20: "found unexpected error file", 21: "in recognizing job", 22: "removed manually",
	24: "migrating", 25: "rescheduling", 26: "opening input/output file",
	27: "searching requested shell", 28: "changing into working directory",
	29: "AFS setup", 30: "application error returned", 31: "accessing sgepasswd file",
	32: "entry is missing in sgepasswd file", 33: "wrong password",
	34: "communicating with Grid Engine Helper Service",
	35: "before job in Grid Engine Helper Service", 36: "checking configured daemons",
	37: "qmaster enforced h_rt, h_cpu, or h_vmem limit", 38: "adding supplementary group",
	100: "assumedly after job",
}

// Accounting failure codes musubi records.
const (
	FailedNone          = 0
	FailedRescheduled   = 25
	FailedOutputFile    = 26
	FailedNoShell       = 27
	FailedNoCwd         = 28
	FailedAppError      = 30
	FailedLimitEnforced = 37
	FailedAfterJob      = 100
)

// FailureDescription returns Grid Engine's text for a "failed" code.
func FailureDescription(code int) string {
	if d, ok := failureDescriptions[code]; ok {
		return d
	}
	return "invalid execution state"
}

// signalDescriptions are strsignal(3)'s texts (glibc), used by qacct after
// an exit status above 128.
var signalDescriptions = map[int]string{
	1: "Hangup", 2: "Interrupt", 3: "Quit", 4: "Illegal instruction",
	5: "Trace/breakpoint trap", 6: "Aborted", 7: "Bus error",
	8: "Floating point exception", 9: "Killed", 10: "User defined signal 1",
	11: "Segmentation fault", 12: "User defined signal 2", 13: "Broken pipe",
	14: "Alarm clock", 15: "Terminated", 16: "Stack fault", 17: "Child exited",
	18: "Continued", 19: "Stopped (signal)", 20: "Stopped", 21: "Stopped (tty input)",
	22: "Stopped (tty output)", 23: "Urgent I/O condition", 24: "CPU time limit exceeded",
	25: "File size limit exceeded", 26: "Virtual timer expired",
	27: "Profiling timer expired", 28: "Window changed", 29: "I/O possible",
	30: "Power failure", 31: "Bad system call",
}

// WriteAccounting writes qacct -j: one block per record, times in loc.
func WriteAccounting(w io.Writer, records []AccountingRecord, loc *time.Location) error {
	out := newWriter(w)
	for i := range records {
		writeAccountingRecord(out, &records[i], loc)
	}
	return out.flush()
}

func writeAccountingRecord(out *writer, r *AccountingRecord, loc *time.Location) {
	field := func(label, value string) { out.line(left(label, 13) + left(value, 20)) }
	plain := func(label, value string) { out.line(left(label, 13) + value) }
	stamp := func(label string, t time.Time) {
		if t.IsZero() {
			plain(label, "-/-")
			return
		}
		plain(label, in(t, loc).Format(ctimeLayout))
	}
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	out.line(jobSeparator)
	field("qname", or(r.QName, "(NULL)"))
	field("hostname", or(r.Hostname, "(NULL)"))
	field("group", or(r.Group, "(NULL)"))
	field("owner", or(r.Owner, "(NULL)"))
	field("project", or(r.Project, "NONE"))
	field("department", or(r.Department, "defaultdepartment"))
	field("jobname", or(r.JobName, "(NULL)"))
	field("jobnumber", strconv.FormatInt(r.JobNumber, 10))
	if r.TaskID > 0 {
		field("taskid", strconv.Itoa(r.TaskID))
	} else {
		plain("taskid", "undefined")
	}
	field("account", or(r.Account, "sge"))
	field("priority", strconv.Itoa(r.Priority))
	stamp("qsub_time", r.SubmitTime)
	stamp("start_time", r.StartTime)
	stamp("end_time", r.EndTime)
	field("granted_pe", or(r.GrantedPE, "NONE"))
	field("slots", strconv.Itoa(r.Slots))
	sep := ""
	if r.Failed != 0 {
		sep = ":"
	}
	plain("failed", fmt.Sprintf("%-3d %s %s", r.Failed, sep, FailureDescription(r.Failed)))
	exit := left(strconv.Itoa(r.ExitStatus), 20)
	if r.ExitStatus > 128 {
		desc, ok := signalDescriptions[r.ExitStatus-128]
		if !ok {
			desc = fmt.Sprintf("Unknown signal %d", r.ExitStatus-128)
		}
		exit += " (" + desc + ")"
	}
	plain("exit_status", exit)
	plain("ru_wallclock", fmt.Sprintf("%.0fs", r.Wallclock))
	plain("ru_utime", fmt.Sprintf("%.3fs", r.UTime))
	plain("ru_stime", fmt.Sprintf("%.3fs", r.STime))
	plain("ru_maxrss", memoryString(r.MaxRSS)+"B")
	plain("ru_ixrss", memoryString(r.IXRSS)+"B")
	plain("ru_ismrss", memoryString(r.ISMRSS)+"B")
	plain("ru_idrss", memoryString(r.IDRSS)+"B")
	plain("ru_isrss", memoryString(r.ISRSS)+"B")
	for _, c := range []struct {
		label string
		v     int64
	}{
		{"ru_minflt", r.MinFlt}, {"ru_majflt", r.MajFlt}, {"ru_nswap", r.NSwap},
		{"ru_inblock", r.InBlock}, {"ru_oublock", r.OuBlock}, {"ru_msgsnd", r.MsgSnd},
		{"ru_msgrcv", r.MsgRcv}, {"ru_nsignals", r.NSignals}, {"ru_nvcsw", r.NVCSW},
		{"ru_nivcsw", r.NIVCSW},
	} {
		field(c.label, strconv.FormatInt(c.v, 10))
	}
	plain("cpu", strings.TrimRight(fmt.Sprintf("%-13.3f", r.CPU), " ")+"s")
	plain("mem", memoryString(r.Mem)+"GBs")
	plain("io", memoryString(r.IO)+"GB")
	plain("iow", strings.TrimRight(fmt.Sprintf("%-18.3f", r.IOW), " ")+"s")
	plain("maxvmem", memoryString(r.MaxVmem)+"B")
	if r.ARID != 0 {
		field("arid", strconv.Itoa(r.ARID))
	} else {
		plain("arid", "undefined")
	}
	plain("category", or(r.Category, "NONE"))
}

// AccountingTotals are the summed usage of qacct's summary lines.
type AccountingTotals struct {
	// Key is the owner (qacct -o) or queue (qacct -q) of the line; ""
	// for the total.
	Key                          string
	Wallclock, UTime, STime, CPU float64
	Mem, IO, IOW                 float64
}

// SumAccounting adds records up, grouped by key (nil key: one total).
func SumAccounting(records []AccountingRecord, key func(*AccountingRecord) string) []AccountingTotals {
	var out []AccountingTotals
	index := map[string]int{}
	for i := range records {
		r := &records[i]
		k := ""
		if key != nil {
			k = key(r)
		}
		n, ok := index[k]
		if !ok {
			n = len(out)
			index[k] = n
			out = append(out, AccountingTotals{Key: k})
		}
		t := &out[n]
		t.Wallclock += r.Wallclock
		t.UTime += r.UTime
		t.STime += r.STime
		t.CPU += r.CPU
		t.Mem += r.Mem
		t.IO += r.IO
		t.IOW += r.IOW
	}
	return out
}

const acctTitle = "    WALLCLOCK         UTIME         STIME           CPU             MEMORY                 IO                IOW"

// WriteAccountingSummary writes qacct's summary table: keyTitle is the
// grouping column ("OWNER" for -o, "CLUSTER QUEUE" for -q, "" for the
// total, headed "Total System Usage").
func WriteAccountingSummary(w io.Writer, keyTitle string, totals []AccountingTotals) error {
	out := newWriter(w)
	width := 0
	if keyTitle != "" {
		width = len(keyTitle) + 1
		for _, t := range totals {
			if len(t.Key) >= width {
				width = len(t.Key) + 1
			}
		}
		out.line(left(keyTitle, width) + acctTitle)
	} else {
		out.line("Total System Usage")
		out.line(acctTitle)
	}
	out.line(strings.Repeat("=", width+len(acctTitle)))
	if keyTitle == "" && len(totals) == 0 {
		totals = []AccountingTotals{{}}
	}
	for _, t := range totals {
		key := ""
		if keyTitle != "" {
			key = left(t.Key, width)
		}
		out.line(key + fmt.Sprintf("%13.0f %13.3f %13.3f %13.3f %18.3f %18.3f %18.3f",
			t.Wallclock, t.UTime, t.STime, t.CPU, t.Mem, t.IO, t.IOW))
	}
	return out.flush()
}
