//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	submittedRE = regexp.MustCompile(`^Your job (\d+) \("([^"]*)"\) has been submitted\n$`)
	arrayRE     = regexp.MustCompile(`^Your job-array (\d+)\.(\d+-\d+:\d+) \("([^"]*)"\) has been submitted\n$`)
	qstatHeader = "job-ID  prior   name       user         state submit/start at     queue                          slots ja-task-ID \n" +
		strings.Repeat("-", 113) + "\n"
)

// submit runs qsub and returns the job id from Grid Engine's message.
func (c *cluster) submit(a *agentProc, args ...string) string {
	c.t.Helper()
	r := c.q(a, "qsub", args...)
	if r.code != 0 {
		c.t.Fatalf("qsub %v: %s", args, r)
	}
	if m := submittedRE.FindStringSubmatch(r.stdout); m != nil {
		return m[1]
	}
	if m := arrayRE.FindStringSubmatch(r.stdout); m != nil {
		return m[1]
	}
	c.t.Fatalf("qsub %v: unexpected output %q", args, r.stdout)
	return ""
}

// TestGridEngineJobs runs Grid Engine users' scripts unchanged against two
// agents (separate processes, two slots each) on a 3-server ensemble.
func TestGridEngineJobs(t *testing.T) {
	c := newCluster(t)
	n1 := c.startAgent("n1", 2)
	n2 := c.startAgent("n2", 2)

	t.Run("qhost lists both nodes", func(t *testing.T) {
		c.t = t
		r := c.q(n2, "qhost")
		if r.code != 0 {
			t.Fatalf("qhost: %s", r)
		}
		lines := strings.Split(r.stdout, "\n")
		if len(lines) < 5 || !strings.HasPrefix(lines[0], "HOSTNAME                ARCH         NCPU NSOC NCOR NTHR  LOAD  MEMTOT  MEMUSE  SWAPTO  SWAPUS") ||
			!strings.HasPrefix(lines[2], "global ") {
			t.Fatalf("qhost output:\n%s", r.stdout)
		}
		for i, n := range []string{"n1", "n2"} {
			if f := strings.Fields(lines[3+i]); len(f) < 6 || f[0] != n || f[1] != "lx-amd64" {
				t.Fatalf("qhost line for %s: %q", n, lines[3+i])
			}
		}
		r = c.q(n1, "qhost", "-q")
		if !strings.Contains(r.stdout, "   all.q                BIP   0/0/2") {
			t.Fatalf("qhost -q:\n%s", r)
		}
	})

	t.Run("array job with -t 1-10 -cwd -j y directives", func(t *testing.T) {
		c.t = t
		c.write("array.sh", `#!/bin/sh
#$ -t 1-10
#$ -cwd -j y
#$ -N arr
echo "task $SGE_TASK_ID of $JOB_ID ($SGE_TASK_FIRST-$SGE_TASK_LAST:$SGE_TASK_STEPSIZE) on $HOSTNAME as $(id -un) in $(pwd)"
echo "to stderr" >&2
`, 0o755)
		r := c.q(n1, "qsub", "array.sh")
		m := arrayRE.FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil || m[2] != "1-10:1" || m[3] != "arr" {
			t.Fatalf("qsub array.sh: %s", r)
		}
		id := m[1]
		c.waitGone(n1, id, 60*time.Second)
		hosts := map[string]bool{}
		for task := 1; task <= 10; task++ {
			out := c.read(fmt.Sprintf("arr.o%s.%d", id, task))
			want := fmt.Sprintf("task %d of %s (1-10:1) on ", task, id)
			if !strings.HasPrefix(out, want) || !strings.Contains(out, " as "+c.userName+" in "+c.work+"\n") || !strings.HasSuffix(out, "to stderr\n") {
				t.Fatalf("arr.o%s.%d = %q; want %q... as %s in %s, then stderr joined", id, task, out, want, c.userName, c.work)
			}
			hosts[strings.Fields(strings.TrimPrefix(out, want))[0]] = true
			if _, err := os.Stat(filepath.Join(c.work, fmt.Sprintf("arr.e%s.%d", id, task))); err == nil {
				t.Fatalf("-j y left an .e file for task %d", task)
			}
			fi, err := os.Stat(filepath.Join(c.work, fmt.Sprintf("arr.o%s.%d", id, task)))
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); c.cred != nil && st.Uid != c.cred.Uid {
				t.Fatalf("output file owned by uid %d, want the job user %d", st.Uid, c.cred.Uid)
			}
		}
		t.Logf("array tasks ran on %v", hosts)
		// qacct shows one record per task.
		r = c.q(n2, "qacct", "-j", id)
		if r.code != 0 || strings.Count(r.stdout, "\njobnumber    "+id+" ") != 10 || !strings.Contains(r.stdout, "\nowner        "+c.userName+" ") {
			t.Fatalf("qacct -j %s: %s", id, r)
		}
	})

	t.Run("-o with $JOB_ID/$TASK_ID pseudo-variables", func(t *testing.T) {
		c.t = t
		if err := os.MkdirAll(filepath.Join(c.work, "out"), 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(c.work, "out"), 0o777)
		id := c.submit(n2, "-cwd", "-t", "1-3", "-N", "pv", "-o", "out/$JOB_NAME.$JOB_ID.$TASK_ID.log", "-e", "out/err.$JOB_ID", "-b", "y", "echo", "hello", "task")
		c.waitGone(n2, id, 30*time.Second)
		for task := 1; task <= 3; task++ {
			if got := c.read(fmt.Sprintf("out/pv.%s.%d.log", id, task)); got != "hello task\n" {
				t.Fatalf("out/pv.%s.%d.log = %q", id, task, got)
			}
		}
		if _, err := os.Stat(filepath.Join(c.work, "out", "err."+id)); err != nil {
			t.Fatalf("stderr file: %v", err)
		}
	})

	t.Run("-hold_jid chain and qstat states", func(t *testing.T) {
		c.t = t
		c.write("step.sh", "#!/bin/sh\nsleep \"$2\"\necho \"$1\" >> chain.txt\n", 0o755)
		a := c.submit(n1, "-cwd", "-N", "stepA", "step.sh", "A", "2")
		b := c.submit(n2, "-cwd", "-N", "stepB", "-hold_jid", a, "step.sh", "B", "0")
		cc := c.submit(n1, "-cwd", "-N", "stepC", "-hold_jid", "stepB", "step.sh", "C", "0")
		never := c.submit(n1, "-cwd", "-N", "nowhere", "-l", "hostname=nosuchnode", "-b", "y", "true")
		held := c.submit(n1, "-cwd", "-N", "heldjob", "-h", "-b", "y", "true")
		// While A runs: A r, B and C hqw (waiting for predecessors),
		// the unplaceable job qw, the held job hqw.
		var listing string
		c.eventually(20*time.Second, "stepA running", func() bool {
			r := c.q(n2, "qstat")
			listing = r.stdout
			return rowState(listing, a) == "r"
		})
		if !strings.HasPrefix(listing, qstatHeader) {
			t.Fatalf("qstat header:\n%q", listing)
		}
		rowRE := regexp.MustCompile(`(?m)^ +` + a + ` 0\.\d{5} stepA +` + regexp.QuoteMeta(c.userName) +
			` +r +\d\d/\d\d/\d{4} \d\d:\d\d:\d\d all\.q@n[12] +1 *$`)
		if !rowRE.MatchString(listing) {
			t.Fatalf("running row of %s not in Grid Engine's format:\n%s", a, listing)
		}
		for id, want := range map[string]string{b: "hqw", cc: "hqw", never: "qw", held: "hqw"} {
			if got := rowState(listing, id); got != want {
				t.Fatalf("job %s state %q, want %q:\n%s", id, got, want, listing)
			}
		}
		pendRE := regexp.MustCompile(`(?m)^ +` + never + ` 0\.\d{5} nowhere +` + regexp.QuoteMeta(c.userName) +
			` +qw +\d\d/\d\d/\d{4} \d\d:\d\d:\d\d {36}1 *$`)
		if !pendRE.MatchString(listing) {
			t.Fatalf("pending row of %s not in Grid Engine's format:\n%s", never, listing)
		}
		r := c.q(n1, "qstat", "-j", b)
		if r.code != 0 || !strings.Contains(r.stdout, "jid_predecessor_list (req): "+a+"\n") || !strings.Contains(r.stdout, "jid_predecessor_list:       "+a+"\n") {
			t.Fatalf("qstat -j %s: %s", b, r)
		}
		c.waitGone(n1, cc, 60*time.Second)
		if got := c.read("chain.txt"); got != "A\nB\nC\n" {
			t.Fatalf("chain.txt = %q, want A B C in order", got)
		}
		r = c.q(n1, "qdel", never, held)
		want := fmt.Sprintf("%[1]s has deleted job %[2]s\n%[1]s has deleted job %[3]s\n", c.userName, never, held)
		if r.code != 0 || r.stdout != want {
			t.Fatalf("qdel: %s\nwant %q", r, want)
		}
		r = c.q(n1, "qdel", "99999")
		if r.code != 1 || r.stdout != "denied: job \"99999\" does not exist\n" {
			t.Fatalf("qdel of an unknown job: %s", r)
		}
	})

	t.Run("-sync y nested in a driver script", func(t *testing.T) {
		c.t = t
		// The driver is itself a job; it runs qsub -sync y inside (-V
		// gives it this shell's PATH and agent socket) and exits with the
		// inner job's exit code, which qsub -sync y reports in turn.
		c.write("driver.sh", `#!/bin/sh
#$ -cwd -V -N driver
qsub -sync y -cwd -b y -o /dev/null -e /dev/null true || exit 90
qsub -sync y -cwd -b y -o /dev/null -e /dev/null sh -c "'exit 7'"
rc=$?
echo "inner exit code $rc"
exit $rc
`, 0o755)
		r := c.q(n1, "qsub", "-sync", "y", "driver.sh")
		m := regexp.MustCompile(`^Your job (\d+) \("driver"\) has been submitted\n$`).FindStringSubmatch(r.stdout)
		if m == nil || r.code != 7 || r.stderr != "Job "+m[1]+" exited with exit code 7.\n" {
			t.Fatalf("qsub -sync y driver.sh: %s\nwant exit 7", r)
		}
		out := c.read("driver.o" + m[1])
		inner := regexp.MustCompile(`^Your job (\d+) \("true"\) has been submitted\nYour job (\d+) \("sh"\) has been submitted\ninner exit code 7\n$`)
		if !inner.MatchString(out) {
			t.Fatalf("driver.o%s = %q", m[1], out)
		}
		errOut := c.read("driver.e" + m[1])
		if !regexp.MustCompile(`^Job \d+ exited with exit code 0\.\nJob \d+ exited with exit code 7\.\n$`).MatchString(errOut) {
			t.Fatalf("driver.e%s = %q", m[1], errOut)
		}
		// And from a plain driver script on the login node.
		c.write("local-driver.sh", "#!/bin/sh\nqsub -sync y -terse -cwd -b y -o /dev/null -e /dev/null false\n", 0o755)
		r = c.q(n2, filepath.Join(c.work, "local-driver.sh"))
		if r.code != 1 || !regexp.MustCompile(`^\d+\n$`).MatchString(r.stdout) || !strings.HasSuffix(r.stderr, "exited with exit code 1.\n") {
			t.Fatalf("local driver: %s", r)
		}
	})

	t.Run("-pe smp 2", func(t *testing.T) {
		c.t = t
		c.write("pe.sh", "#!/bin/sh\n#$ -pe smp 2\n#$ -cwd -j y -N pe\necho \"NSLOTS=$NSLOTS NHOSTS=$NHOSTS\"\ncat \"$PE_HOSTFILE\"\n", 0o755)
		id := c.submit(n1, "pe.sh")
		c.waitGone(n1, id, 30*time.Second)
		out := c.read("pe.o" + id)
		if !regexp.MustCompile(`^NSLOTS=2 NHOSTS=1\n(n[12]) 2 all\.q@(n[12]) UNDEFINED\n$`).MatchString(out) {
			t.Fatalf("pe.o%s = %q", id, out)
		}
		r := c.q(n2, "qacct", "-j", id)
		if r.code != 0 || !strings.Contains(r.stdout, "granted_pe   smp ") || !strings.Contains(r.stdout, "\nslots        2 ") {
			t.Fatalf("qacct -j %s: %s", id, r)
		}
	})

	t.Run("-pe mpi 3 spans both nodes", func(t *testing.T) {
		c.t = t
		id := c.submit(n2, "-cwd", "-j", "y", "-N", "mpi", "-pe", "mpi", "3", "-b", "y",
			"sh", "-c", `'echo "NSLOTS=$NSLOTS NHOSTS=$NHOSTS"; sort "$PE_HOSTFILE"'`)
		c.waitGone(n2, id, 30*time.Second)
		out := c.read("mpi.o" + id)
		if !regexp.MustCompile(`^NSLOTS=3 NHOSTS=2\nn1 [12] all\.q@n1 UNDEFINED\nn2 [12] all\.q@n2 UNDEFINED\n$`).MatchString(out) {
			t.Fatalf("mpi.o%s = %q", id, out)
		}
	})

	t.Run("qdel of a running job kills it within 1 s", func(t *testing.T) {
		c.t = t
		id := c.submit(n2, "-cwd", "-N", "sleeper", "-o", "/dev/null", "-j", "y", "-b", "y", "sh", "-c", "'echo $$ > sleeper.pid; exec sleep 300'")
		var pid int
		c.eventually(20*time.Second, "sleeper running", func() bool {
			b, err := os.ReadFile(filepath.Join(c.work, "sleeper.pid"))
			if err != nil {
				return false
			}
			pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
			return err == nil && pid > 0 && processAlive(pid)
		})
		r := c.q(n1, "qstat")
		if rowState(r.stdout, id) != "r" {
			t.Fatalf("sleeper not shown running:\n%s", r.stdout)
		}
		t0 := time.Now()
		r = c.q(n1, "qdel", id)
		if r.code != 0 || r.stdout != c.userName+" has registered the job "+id+" for deletion\n" {
			t.Fatalf("qdel: %s", r)
		}
		for processAlive(pid) {
			if time.Since(t0) > 2*time.Second {
				t.Fatalf("job process %d still alive %s after qdel", pid, time.Since(t0))
			}
			time.Sleep(5 * time.Millisecond)
		}
		killed := time.Since(t0)
		t.Logf("qdel -> process gone: %s", killed)
		if killed > time.Second {
			t.Fatalf("qdel took %s to kill the job, want < 1 s", killed)
		}
		c.waitGone(n1, id, 10*time.Second)
		r = c.q(n1, "qacct", "-j", id)
		if r.code != 0 || !strings.Contains(r.stdout, "exit_status  137                  (Killed)") || !strings.Contains(r.stdout, "failed       100 : assumedly after job") {
			t.Fatalf("qacct -j %s: %s", id, r)
		}
	})

	t.Run("errors like Grid Engine's", func(t *testing.T) {
		c.t = t
		r := c.q(n1, "qsub", "no-such-script.sh")
		if r.code != 14 || r.stderr != "Unable to read script file because of error: error opening no-such-script.sh: No such file or directory\n" {
			t.Fatalf("qsub of a missing script: %s", r)
		}
		r = c.q(n1, "qsub", "-bogus")
		if r.code == 0 || !strings.HasPrefix(r.stderr, "qsub: ") {
			t.Fatalf("qsub -bogus: %s", r)
		}
		r = c.q(n1, "qacct", "-j", "999999")
		if r.code != 1 || r.stderr != "error: job id 999999 not found\n" {
			t.Fatalf("qacct of an unknown job: %s", r)
		}
		r = c.q(n1, "qstat", "-j", "999999")
		if r.code != 1 || !strings.Contains(r.stderr, "Following jobs do not exist") {
			t.Fatalf("qstat -j of an unknown job: %s", r)
		}
		// `musubi qsub` is the same command as the qsub symlink.
		r = c.qIn(n1, c.work, []byte("echo from stdin\n"), musubiBin, "qsub", "-terse", "-cwd", "-o", "/dev/null", "-e", "/dev/null")
		if r.code != 0 || !regexp.MustCompile(`^\d+\n$`).MatchString(r.stdout) {
			t.Fatalf("musubi qsub from stdin: %s", r)
		}
		// No agent: the commands say how to start one.
		dead := &agentProc{name: "none", socket: filepath.Join(c.work, "no-agent.sock")}
		r = c.q(dead, "qstat")
		if r.code != 1 || !strings.Contains(r.stderr, "musubi agent --zk") {
			t.Fatalf("qstat without an agent: %s", r)
		}
	})

	t.Run("a job whose node dies runs again on the other node", func(t *testing.T) {
		c.t = t
		c.write("rerun.sh", "#!/bin/sh\n#$ -cwd -j y -N rerun\necho \"$HOSTNAME restarted=$RESTARTED\" >> rerun.txt\nsleep 1\n", 0o755)
		id := c.submit(n1, "rerun.sh")
		var first string
		c.eventually(20*time.Second, "the job to start", func() bool {
			b, err := os.ReadFile(filepath.Join(c.work, "rerun.txt"))
			first = strings.TrimSpace(string(b))
			return err == nil && first != ""
		})
		node := strings.Fields(first)[0]
		dead, alive := c.agents[node], n1
		if node == "n1" {
			alive = n2
		}
		if err := dead.cmd.Process.Kill(); err != nil { // SIGKILL: its session expires
			t.Fatal(err)
		}
		c.waitGone(alive, id, 60*time.Second)
		lines := strings.Split(strings.TrimSpace(c.read("rerun.txt")), "\n")
		if len(lines) != 2 || lines[0] != node+" restarted=0" || lines[1] != alive.name+" restarted=1" {
			t.Fatalf("rerun.txt = %q; want a run on %s, then a rerun on %s", lines, node, alive.name)
		}
		r := c.q(alive, "qacct", "-j", id)
		if r.code != 0 || strings.Count(r.stdout, "\njobnumber    "+id+" ") != 2 {
			t.Fatalf("qacct -j %s (want the lost run and the rerun): %s", id, r)
		}
	})

	// The agents still running shut down cleanly on SIGTERM (checked by
	// stopAgent).
	c.t = t
	c.stopAgent(n1)
	c.stopAgent(n2)
}

// rowState is the state column of job id's first row in a qstat listing.
func rowState(listing, id string) string {
	for _, l := range strings.Split(listing, "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && f[0] == id {
			return f[4]
		}
	}
	return ""
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie has exited.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
