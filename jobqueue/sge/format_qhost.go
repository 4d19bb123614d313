package sge

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

const (
	qhostHeader    = "HOSTNAME                ARCH         NCPU NSOC NCOR NTHR  LOAD  MEMTOT  MEMUSE  SWAPTO  SWAPUS"
	qhostJobHeader = "   job-ID  prior   name       user         state submit/start at     queue      master ja-task-ID "
	qhostXMLNS     = `xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qhost/qhost.xsd"`
)

// WriteQhost writes qhost's host table (with -q queues and -j jobs under
// each host, as o selects), or its XML form with -xml. The "global" pseudo
// host comes first, as in Grid Engine.
func WriteQhost(w io.Writer, hosts []HostView, o QhostOptions, loc *time.Location) error {
	out := newWriter(w)
	if o.XML {
		writeQhostXML(out, hosts, o)
		return out.flush()
	}
	out.line(qhostHeader)
	out.line(strings.Repeat("-", len(qhostHeader)))
	out.line(hostRow(HostView{Name: "global"}))
	for _, h := range hosts {
		out.line(hostRow(h))
		if o.Queues {
			for _, q := range h.Queues {
				out.line("   " + left(q.Name, 20) + " " + left(q.Type, 5) + " " +
					left(fmt.Sprintf("%d/%d/%d", q.Reserved, q.Used, q.Total), 14) + q.States)
			}
		}
		if o.Jobs && len(h.Jobs) > 0 {
			out.line(qhostJobHeader)
			out.line("   " + strings.Repeat("-", len(qhostJobHeader)-4))
			for _, j := range h.Jobs {
				out.line(qhostJobRow(j, loc))
			}
		}
	}
	return out.flush()
}

// hostValues are the load columns of a host, "-" when it reports none.
func hostValues(h HostView) (arch, ncpu, nsoc, ncor, nthr, load, memtot, memuse, swapto, swapus string) {
	if !h.HasLoad {
		return "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"
	}
	mem := func(v int64) string { return hostMemoryString(float64(v)) }
	return h.Arch, strconv.Itoa(h.NCPU), strconv.Itoa(h.Sockets), strconv.Itoa(h.Cores),
		strconv.Itoa(h.Threads), fmt.Sprintf("%.2f", h.Load), mem(h.MemTotal), mem(h.MemUsed),
		mem(h.SwapTotal), mem(h.SwapUsed)
}

func hostRow(h HostView) string {
	arch, ncpu, nsoc, ncor, nthr, load, memtot, memuse, swapto, swapus := hostValues(h)
	return left(h.Name, 23) + " " + left(arch, 12) + " " + right(ncpu, 4) + " " + right(nsoc, 4) +
		" " + right(ncor, 4) + " " + right(nthr, 4) + " " + right(load, 5) + " " + right(memtot, 7) +
		" " + right(memuse, 7) + " " + right(swapto, 7) + " " + right(swapus, 7)
}

func qhostJobRow(j JobView, loc *time.Location) string {
	tasks := "       "
	if j.Tasks != "" {
		tasks = j.Tasks
	}
	return "   " + right(strconv.FormatInt(j.ID, 10), 7) + " " + fmt.Sprintf("%7.5f", j.Priority) + " " +
		fixed(j.Name, 10) + " " + fixed(j.Owner, 12) + " " + left(j.State, 5) + " " +
		in(j.Time, loc).Format(tableTime) + " " + fixed(j.Queue, 10) + " " + left(j.Master, 6) + " " + tasks
}

func writeQhostXML(out *writer, hosts []HostView, o QhostOptions) {
	out.line(xmlHeader)
	out.line("<qhost " + qhostXMLNS + ">")
	all := append([]HostView{{Name: "global"}}, hosts...)
	for _, h := range all {
		out.line(" <host name='" + xmlEscape(h.Name) + "'>")
		arch, ncpu, nsoc, ncor, nthr, load, memtot, memuse, swapto, swapus := hostValues(h)
		for _, hv := range []struct{ name, value string }{
			{"arch_string", arch}, {"num_proc", ncpu}, {"m_socket", nsoc}, {"m_core", ncor},
			{"m_thread", nthr}, {"load_avg", load}, {"mem_total", memtot}, {"mem_used", memuse},
			{"swap_total", swapto}, {"swap_used", swapus},
		} {
			out.line("   <hostvalue name='" + hv.name + "'>" + xmlEscape(hv.value) + "</hostvalue>")
		}
		if o.Queues {
			for _, q := range h.Queues {
				qn := xmlEscape(q.Name)
				out.line(" <queue name='" + qn + "'>")
				for _, qv := range []struct{ name, value string }{
					{"qtype_string", q.Type}, {"slots_used", strconv.Itoa(q.Used)},
					{"slots", strconv.Itoa(q.Total)}, {"slots_resv", strconv.Itoa(q.Reserved)},
					{"state_string", q.States},
				} {
					out.line("   <queuevalue qname='" + qn + "' name='" + qv.name + "'>" + xmlEscape(qv.value) + "</queuevalue>")
				}
				out.line(" </queue>")
			}
		}
		if o.Jobs {
			for _, j := range h.Jobs {
				id := strconv.FormatInt(j.ID, 10)
				out.line(" <job name='" + id + "'>")
				for _, jv := range []struct{ name, value string }{
					{"priority", fmt.Sprintf("'%f'", j.Priority)}, {"qinstance_name", j.Queue},
					{"job_name", j.Name}, {"job_owner", j.Owner}, {"job_state", j.State},
					{"start_time", strconv.FormatInt(j.Time.Unix(), 10)}, {"pe_master", j.Master},
				} {
					out.line("   <jobvalue jobid='" + id + "' name='" + jv.name + "'>" + xmlEscapeText(jv.value) + "</jobvalue>")
				}
				if j.Tasks != "" {
					out.line("   <jobvalue jobid='" + id + "' name='taskid'>" + xmlEscapeText(j.Tasks) + "</jobvalue>")
				}
				out.line(" </job>")
			}
		}
		out.line(" </host>")
	}
	out.line("</qhost>")
}

// xmlEscapeText escapes element text the way qhost does: markup characters
// only (the priority value keeps its quotes).
func xmlEscapeText(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}
