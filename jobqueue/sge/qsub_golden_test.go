package sge

import (
	"strings"
	"testing"
)

// TestQsubTranscripts replays the qsub commands of the reference
// transcripts and compares what qsub prints (stdout then stderr) and its
// exit status with real Grid Engine's.
func TestQsubTranscripts(t *testing.T) {
	skip := []string{
		"$(",          // shell substitutions (-a $(date ...), -N $(printf ...))
		"SGE_ROOT=",   // cell environment errors
		"SGE_QMASTER", // qmaster connection errors
		"| head",      // partial output, tested in TestQsubHelp
		"-w e -l mem_free=900G",
		"-l mem_free=1G",
		"-l cpu=1", // scheduler decisions (no suitable queues)
		"-pe smp 3",
	}
	files := []string{"qsub_basic.txt", "qsub_errors.txt", "directives.txt", "resources.txt"}
	n := 0
	for _, f := range files {
		for _, b := range loadTranscript(t, f) {
			cmd := b.cmd
			stdin := ""
			if strings.HasPrefix(cmd, "echo 'echo from-stdin' | ") {
				stdin = "echo from-stdin\n"
				cmd = strings.TrimPrefix(cmd, "echo 'echo from-stdin' | ")
			}
			if !strings.HasPrefix(cmd, "qsub") || containsAny(cmd, skip) {
				continue
			}
			b.cmd = cmd
			t.Run(f+"/"+cmd, func(t *testing.T) {
				stdout, stderr, exit := runQsubCase(t, b, stdin, nil)
				if got := stdout + stderr; got != b.output {
					t.Errorf("output\n got: %q\nwant: %q", got, b.output)
				}
				if exit != b.exit {
					t.Errorf("exit = %d, want %d", exit, b.exit)
				}
			})
			n++
		}
	}
	if n < 60 {
		t.Fatalf("only %d transcript commands replayed", n)
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestQsubSyncTranscript replays qsub -sync y: the submission line goes to
// stdout, the end of each task to stderr, and the exit status follows the
// job's.
func TestQsubSyncTranscript(t *testing.T) {
	cases := map[string][]SyncResult{
		"qsub -cwd -sync y /var/tmp/musubi-lab/sge/jobs/compat/exit3.sh":                                              {{ExitCode: 3}},
		"qsub -cwd -sync y /var/tmp/musubi-lab/sge/jobs/compat/exit3.sh 2>/dev/null   # stdout only":                  {{ExitCode: 3}},
		"qsub -cwd -sync y /var/tmp/musubi-lab/sge/jobs/compat/exit3.sh >/dev/null   # stderr only":                   {{ExitCode: 3}},
		"qsub -cwd -sync y -b y /bin/true":                                                                            {{ExitCode: 0}},
		"qsub -cwd -sync y -terse -b y /bin/false":                                                                    {{ExitCode: 1}},
		"qsub -cwd -sync y -t 1-3 -b y /bin/true":                                                                     {{Task: 1}, {Task: 2}, {Task: 3}},
		"qsub -cwd -sync y -b y /bin/sh -c 'kill -9 $$'   # -b y args are re-parsed by a shell: this runs sh -c kill": {{ExitCode: 2}},
		"qsub -cwd -sync y -b y 'kill -9 $$'":                                                                         nil,
		"qsub -cwd -sync y -l h_rt=0:0:2 -b y sleep 30":                                                               {{Signal: "SIGKILL"}},
		"qsub -cwd -sync y -b y /no/such/binary":                                                                      {{ExitCode: 127}},
	}
	n := 0
	for _, b := range loadTranscript(t, "qsub_sync.txt") {
		res, ok := cases[b.cmd]
		if !ok {
			continue
		}
		n++
		t.Run(b.cmd, func(t *testing.T) {
			stdout, stderr, exit := runQsubCase(t, b, "", res)
			var wantOut, wantErr []string
			for _, l := range strings.Split(strings.TrimSuffix(b.output, "\n"), "\n") {
				if strings.HasPrefix(l, "Job ") || strings.HasPrefix(l, "Unable to run job") || l == "Exiting." {
					wantErr = append(wantErr, l)
				} else {
					wantOut = append(wantOut, l)
				}
			}
			if strings.Contains(b.cmd, "2>/dev/null") {
				stderr, wantErr = "", nil
			}
			if strings.Contains(b.cmd, " >/dev/null") {
				stdout, wantOut = "", nil
			}
			if got, want := stdout, joinLines(wantOut); got != want {
				t.Errorf("stdout\n got: %q\nwant: %q", got, want)
			}
			if got, want := stderr, joinLines(wantErr); got != want {
				t.Errorf("stderr\n got: %q\nwant: %q", got, want)
			}
			if exit != b.exit {
				t.Errorf("exit = %d, want %d", exit, b.exit)
			}
		})
	}
	if n != len(cases) {
		t.Fatalf("replayed %d of %d sync cases", n, len(cases))
	}
}

func joinLines(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestQsubSyncNeverRan covers a -sync y job deleted in Eqw: "Unable to run
// job J" on stderr and exit status 0.
func TestQsubSyncNeverRan(t *testing.T) {
	b := block{cmd: "qsub -sync y -o /nonexistent_dir/x.out -N eqw_sync /var/tmp/musubi-lab/sge/jobs/compat/sleeper.sh",
		output: `Your job 17116 ("eqw_sync") has been submitted` + "\n"}
	stdout, stderr, exit := runQsubCase(t, b, "", []SyncResult{{NeverRan: true}})
	if stdout != b.output || stderr != "Unable to run job 17116\n" || exit != 0 {
		t.Fatalf("got %q %q %d", stdout, stderr, exit)
	}
}

// TestHelpTexts checks every command's -help output against the
// reference help texts.
func TestHelpTexts(t *testing.T) {
	for _, c := range Commands {
		want, err := readTestdata("../../../shared/sge-reference/help_" + c + ".txt")
		if err != nil {
			want, err = readTestdata("help/" + c + ".txt")
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := HelpText(c); got != want {
			t.Errorf("%s -help differs", c)
		}
		if !strings.HasPrefix(HelpText(c), "SGE 8.1.9\nusage: "+c+" ") {
			t.Errorf("%s help header: %q", c, HelpText(c)[:30])
		}
	}
	if HelpText("nosuch") != "" {
		t.Error("help for an unknown command")
	}
}

// TestQsubHelp checks qsub -help (the reference shows its first 5 lines).
func TestQsubHelp(t *testing.T) {
	for _, b := range loadTranscript(t, "qsub_errors.txt") {
		if b.cmd != "qsub -help | head -5" {
			continue
		}
		stdout, stderr, exit := runQsubCase(t, block{cmd: "qsub -help"}, "", nil)
		lines := strings.SplitAfter(stdout, "\n")
		if got := strings.Join(lines[:5], ""); got != b.output || stderr != "" || exit != 0 {
			t.Fatalf("got %q (stderr %q, exit %d), want %q", got, stderr, exit, b.output)
		}
		return
	}
	t.Fatal("qsub -help not in transcript")
}
