package executor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// pathVars are the values of Grid Engine's pseudo variables in -o/-e paths.
type pathVars struct {
	JobID   int64
	TaskID  int // 0 for a non-array job: $TASK_ID expands to "0"
	JobName string
	User    string
	Host    string
	Home    string
	// LookupHome finds another user's home for "~user/"; nil disables it.
	LookupHome func(user string) (string, bool)
}

// selectPath picks this host's path from a -o/-e value, which Grid Engine
// accepts as [[host]:]path[,[host]:path...]: the entry for host if there is
// one, else the first entry without a host, else the last entry.
func selectPath(raw, host string) string {
	if raw == "" {
		return ""
	}
	var fallback string
	haveFallback := false
	last := ""
	for entry := range strings.SplitSeq(raw, ",") {
		h, p := splitHostPath(entry)
		last = p
		if h == "" {
			if !haveFallback {
				fallback, haveFallback = p, true
			}
			continue
		}
		if sameHost(h, host) {
			return p
		}
	}
	if haveFallback {
		return fallback
	}
	return last
}

// splitHostPath splits "host:path" (a prefix without '/' before the first
// ':'); ":path" has an empty host.
func splitHostPath(entry string) (host, path string) {
	i := strings.IndexByte(entry, ':')
	if i < 0 || strings.ContainsRune(entry[:i], '/') {
		return "", entry
	}
	return entry[:i], entry[i+1:]
}

// sameHost compares host names case-insensitively, a short name matching
// its fully qualified form.
func sameHost(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	sa, _, _ := strings.Cut(a, ".")
	sb, _, _ := strings.Cut(b, ".")
	return (sa == a || sb == b) && strings.EqualFold(sa, sb)
}

// pseudoVars are Grid Engine's path pseudo variables. None is a prefix of
// another, and, as in Grid Engine, they match as prefixes ("$JOB_IDx" is
// the id followed by "x"); any other "$" is kept literally.
var pseudoVars = []string{"$HOME", "$HOSTNAME", "$JOB_ID", "$JOB_NAME", "$TASK_ID", "$USER"}

// expandPath expands a leading "~/" or "~user/" and the pseudo variables
// $HOME $HOSTNAME $JOB_ID $JOB_NAME $TASK_ID $USER of an -o/-e path.
func expandPath(p string, v pathVars) string {
	var b strings.Builder
	if rest, ok := strings.CutPrefix(p, "~"); ok {
		name, tail, hasSlash := strings.Cut(rest, "/")
		switch {
		case name == "":
			b.WriteString(v.Home)
			if hasSlash {
				b.WriteByte('/')
			}
			p = tail
		case v.LookupHome != nil:
			if home, found := v.LookupHome(name); found {
				b.WriteString(home)
				if hasSlash {
					b.WriteByte('/')
				}
				p = tail
			}
		}
	}
	for {
		i := strings.IndexByte(p, '$')
		if i < 0 {
			b.WriteString(p)
			return b.String()
		}
		b.WriteString(p[:i])
		p = p[i:]
		matched := ""
		for _, name := range pseudoVars {
			if strings.HasPrefix(p, name) {
				matched = name
				break
			}
		}
		switch matched {
		case "$HOME":
			b.WriteString(v.Home)
		case "$HOSTNAME":
			b.WriteString(v.Host)
		case "$JOB_ID":
			b.WriteString(strconv.FormatInt(v.JobID, 10))
		case "$JOB_NAME":
			b.WriteString(v.JobName)
		case "$TASK_ID":
			b.WriteString(strconv.Itoa(v.TaskID))
		case "$USER":
			b.WriteString(v.User)
		default:
			b.WriteByte('$')
			p = p[1:]
			continue
		}
		p = p[len(matched):]
	}
}

// outputBase returns the path Grid Engine derives from a raw -o/-e value
// before looking at the file system: this host's entry, expanded, relative
// to the working directory cwd; the working directory itself for "".
func outputBase(raw string, v pathVars, cwd string) string {
	p := expandPath(selectPath(raw, v.Host), v)
	switch {
	case p == "":
		return cwd
	case strings.HasPrefix(p, "/"):
		return p
	default:
		return strings.TrimSuffix(cwd, "/") + "/" + p
	}
}

// defaultOutputName is Grid Engine's default output file name:
// <name>.o<job> or <name>.o<job>.<task> (kind "o" or "e").
func defaultOutputName(jobName, kind string, jobID int64, taskID int) string {
	name := jobName + "." + kind + strconv.FormatInt(jobID, 10)
	if taskID != 0 {
		name += "." + strconv.Itoa(taskID)
	}
	return name
}

// resolveOutput finishes an output path on the file system, as the job
// user: an existing directory gets the default file name appended; a
// missing path is a file to create. which is "stdout_path" or "stderr_path"
// for the error text.
func resolveOutput(base, defaultName, which string) (string, error) {
	fi, err := os.Stat(base)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return base, nil
		}
		return "", &StartError{
			Failed: FailedOutputFile,
			Reason: fmt.Sprintf("can't stat() \"%s\" as %s: %s", base, which, strerror(err)),
			kind:   ErrOutputFile,
			err:    err,
		}
	}
	if fi.IsDir() {
		return filepath.Join(base, defaultName), nil
	}
	return base, nil
}

// openOutput opens (creating, never truncating) an output file for
// appending, as Grid Engine's shepherd does.
func openOutput(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, &StartError{
			Failed: FailedOutputFile,
			Reason: fmt.Sprintf("error: can't open output file \"%s\": %s", path, strerror(err)),
			kind:   ErrOutputFile,
			err:    err,
		}
	}
	return f, nil
}
