package jobqueue

import (
	"path"
	"strconv"
	"strings"

	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// Capacity is what an executor can give a job now.
type Capacity struct {
	// Slots is the number of free slots.
	Slots int
	// Memory is the free memory in bytes, checked against mem_free
	// requests; 0 means unknown (not checked).
	Memory int64
}

// limitResources are -l requests that set limits on the job rather than
// select hosts.
var limitResources = map[string]bool{
	"h_rt": true, "s_rt": true, "h_cpu": true, "s_cpu": true, "h_vmem": true, "s_vmem": true,
	"h_data": true, "s_data": true, "h_stack": true, "s_stack": true, "h_core": true, "s_core": true,
	"h_rss": true, "s_rss": true, "h_fsize": true, "s_fsize": true, "mem_free": true,
}

// grantSlots returns how many slots a job (or one array task) gets on a
// host with free slots, or 0 when it does not fit: 1 without a PE; with
// -pe, the largest allowed count not above free (Grid Engine grants the
// most slots the range allows).
func grantSlots(spec *sge.JobSpec, free int) int {
	if spec.PE == nil {
		if free >= 1 {
			return 1
		}
		return 0
	}
	ranges := spec.PE.Ranges
	if len(ranges) == 0 {
		ranges = []sge.SlotRange{{Min: spec.PE.Min, Max: spec.PE.Max}}
	}
	best := 0
	for _, r := range ranges {
		if r.Min > free {
			continue
		}
		best = max(best, min(r.Max, free))
	}
	return best
}

// fits reports how many slots the job gets on this executor with capacity
// c (0: it does not fit now), and whether it could ever fit on this host
// (its total slots, memory and host attributes).
func fits(spec *sge.JobSpec, info *HostInfo, c Capacity) (slots int, possible bool) {
	if !hostMatches(spec, info) {
		return 0, false
	}
	if grantSlots(spec, info.Slots) == 0 {
		return 0, false
	}
	mem := spec.Resources.MemFree
	if mem > 0 && info.MemTotal > 0 && mem > info.MemTotal {
		return 0, false
	}
	if mem > 0 && c.Memory > 0 && mem > c.Memory {
		return 0, true
	}
	return grantSlots(spec, c.Slots), true
}

// hostMatches checks the job's host-selecting requests (-l hostname=,
// -l arch=, other host attributes, -q queue@host) against the host.
func hostMatches(spec *sge.JobSpec, info *HostInfo) bool {
	for _, r := range spec.Resources.Hard {
		if limitResources[r.Name] || r.Value == "" {
			continue
		}
		var have string
		var ok bool
		switch r.Name {
		case "hostname":
			have, ok = info.Host, true
		case "arch":
			have, ok = info.Arch, info.Arch != ""
		case "qname":
			have, ok = "all.q", true
		default:
			have, ok = info.Attributes[r.Name]
		}
		if !ok {
			// Requests for attributes this host does not report are not
			// enforced (the front end has checked that they exist).
			continue
		}
		if !valueMatches(r.Value, have) {
			return false
		}
	}
	if len(spec.Queues) == 0 {
		return true
	}
	for _, q := range spec.Queues {
		qn, host, hasHost := strings.Cut(q, "@")
		if qn != "" && !wildMatch(qn, "all.q") {
			continue
		}
		if !hasHost || wildMatch(host, info.Host) || wildMatch(host, info.Executor) {
			return true
		}
	}
	return false
}

// valueMatches compares a requested value with the host's: numbers as
// "at least", strings as (wildcard or |-alternative) patterns.
func valueMatches(want, have string) bool {
	if w, err := strconv.ParseFloat(want, 64); err == nil {
		if h, err := strconv.ParseFloat(have, 64); err == nil {
			return h >= w
		}
	}
	for _, alt := range strings.Split(want, "|") {
		if wildMatch(alt, have) {
			return true
		}
	}
	return false
}

func wildMatch(pattern, s string) bool {
	if pattern == s {
		return true
	}
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}
