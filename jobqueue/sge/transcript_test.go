package sge

import (
	"bytes"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// block is one command of a reference transcript: "$ command", its
// combined output and "[exit=N]".
type block struct {
	cmd    string
	output string
	exit   int
}

// loadTranscript reads a ../shared/sge-reference transcript (copied to
// testdata).
func loadTranscript(t *testing.T, name string) []block {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	var cur *block
	var lines []string
	exitRe := regexp.MustCompile(`^\[exit=(\d+)\]$`)
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "$ "):
			cur = &block{cmd: strings.TrimPrefix(l, "$ ")}
			lines = nil
		case cur != nil && exitRe.MatchString(l):
			n, _ := strconv.Atoi(exitRe.FindStringSubmatch(l)[1])
			cur.exit = n
			if len(lines) > 0 {
				cur.output = strings.Join(lines, "\n") + "\n"
			}
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			lines = append(lines, l)
		}
	}
	return out
}

// shellWords splits a command line like a POSIX shell would for the simple
// commands of the transcripts: quotes, redirections and comments.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			i = len(s)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, "2>") || strings.HasPrefix(w, ">") {
			continue
		}
		out = append(out, w)
	}
	return out
}

// fakeFS serves file contents to ReadFile.
type fakeFS map[string]string

func (f fakeFS) read(p string) ([]byte, error) {
	if s, ok := f[p]; ok {
		if s == "<dir>" {
			return nil, &fs.PathError{Op: "read", Path: p, Err: errIsDir}
		}
		return []byte(s), nil
	}
	return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
}

type dirError struct{}

func (dirError) Error() string { return "is a directory" }

var errIsDir = dirError{}

const compatDir = "/var/tmp/musubi-lab/sge/jobs/compat/"

// labFS holds the scripts the reference transcripts submit.
func labFS() fakeFS {
	f := fakeFS{
		compatDir + "sleeper.sh": "#!/bin/sh\necho start $(date +%s.%N) host=$(hostname) job=$JOB_ID task=$SGE_TASK_ID\nsleep ${1:-1}\n",
		compatDir + "args.sh":    "#!/bin/sh\necho nargs=$# args=[$*] pwd=$(pwd)\n",
		compatDir + "exit3.sh":   "#!/bin/sh\necho about to exit 3\nexit 3\n",
		"/bin/true":              "\x7fELF\x02\x01\x01\x00\x00\x00",
	}
	scripts, err := os.ReadFile("testdata/directives_scripts.txt")
	if err == nil {
		var name string
		for _, l := range strings.SplitAfter(string(scripts), "\n") {
			if strings.HasPrefix(l, "=== ") {
				name = strings.TrimSpace(strings.TrimPrefix(l, "=== "))
				continue
			}
			if name != "" {
				f[name] += l
			}
		}
	}
	return f
}

func labSubmitter() Submitter {
	return Submitter{
		User: "root", Group: "root", Home: "/root", Host: "localhost",
		Cwd: "/var/tmp/musubi-lab/sge/jobs/compat_run",
		Env: []string{
			"PATH=/usr/local/go/bin:/root/go/bin:/root/.cargo/bin:/root/.cargo/bin:/root/.pyenv/plugins/pyenv-virtualenv/shims:/root/.pyenv/shims:/root/.pyenv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"SHELL=/bin/bash", "HOME=/root", "LOGNAME=root",
		},
	}
}

// labCluster is the reference cell: host vm, queue all.q, PEs make/mpi/smp.
func labCluster() Cluster { return Cluster{Hosts: []string{"vm"}} }

var jobIDRe = regexp.MustCompile(`(?m)(?:^|job(?:-array)? |Job )(\d{4,})`)

// runQsubCase runs one transcript command through RunQsub; the job id
// handed out is the one the transcript shows.
func runQsubCase(t *testing.T, b block, stdin string, sync []SyncResult) (stdout, stderr string, exit int) {
	t.Helper()
	words := shellWords(b.cmd)
	if len(words) == 0 || words[0] != "qsub" {
		t.Fatalf("not a qsub command: %q", b.cmd)
	}
	var id int64 = 1
	if m := jobIDRe.FindStringSubmatch(b.output); m != nil {
		id, _ = strconv.ParseInt(m[1], 10, 64)
	}
	var out, errb bytes.Buffer
	exit = RunQsub(QsubRun{
		Request: QsubRequest{
			Args:      words[1:],
			Submitter: labSubmitter(),
			ReadFile:  labFS().read,
			ReadStdin: func() ([]byte, error) { return []byte(stdin), nil },
			Now:       time.Date(2026, 11, 22, 2, 5, 0, 0, time.UTC),
			Location:  time.UTC,
		},
		Cluster: labCluster(),
		Submit:  func(*JobSpec) (int64, error) { return id, nil },
		Wait:    func(int64, *JobSpec) ([]SyncResult, error) { return sync, nil },
		Stdout:  &out,
		Stderr:  &errb,
	})
	return out.String(), errb.String(), exit
}

func readTestdata(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
