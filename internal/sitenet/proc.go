package sitenet

import (
	"fmt"
	"os"
	"strings"
)

// ProcStart returns the start time of process pid in clock ticks since
// boot (field 22 of /proc/<pid>/stat), as text. A PID and its start time
// name one process: a recycled PID has another start time.
func ProcStart(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	return parseStart(string(b), pid)
}

func parseStart(stat string, pid int) (string, error) {
	// The command name (field 2) may hold spaces; fields after it do not.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return "", fmt.Errorf("sitenet: bad /proc/%d/stat", pid)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("sitenet: bad /proc/%d/stat", pid)
	}
	return f[19], nil // field 22 overall
}

// ProcState is the state letter of process pid (R, S, D, Z, ...), or ""
// when it does not exist.
func ProcState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || len(s) < i+3 {
		return ""
	}
	return s[i+2 : i+3]
}

// SameProcess reports whether pid is alive (not a zombie) and still the
// process that had start time start.
func SameProcess(pid int, start string) bool {
	if pid <= 0 || start == "" {
		return false
	}
	if st := ProcState(pid); st == "" || st == "Z" || st == "X" {
		return false
	}
	got, err := ProcStart(pid)
	return err == nil && got == start
}
