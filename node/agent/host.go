package agent

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// loadAvg reads the 1-minute load average from /proc/loadavg, in
// hundredths (-1 when unknown).
func loadAvg() int {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return int(v*100 + 0.5)
}

// memInfo is the host's memory from /proc/meminfo, in bytes.
type memInfo struct {
	Total, Available, SwapTotal, SwapFree int64
}

func readMemInfo() (memInfo, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return memInfo{}, false
	}
	var m memInfo
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		v *= 1024 // kB
		switch f[0] {
		case "MemTotal:":
			m.Total = v
		case "MemAvailable:":
			m.Available = v
		case "SwapTotal:":
			m.SwapTotal = v
		case "SwapFree:":
			m.SwapFree = v
		}
	}
	return m, m.Total > 0
}

// hostArch is Grid Engine's name of this host's architecture.
func hostArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "lx-amd64"
	case "arm64":
		return "lx-arm64"
	case "386":
		return "lx-x86"
	}
	return "lx-" + runtime.GOARCH
}
