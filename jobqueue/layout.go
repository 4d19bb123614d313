package jobqueue

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
)

// The queue's znode layout under coord.VCJobsDir(vc) (called J below). All
// nodes are persistent unless marked ephemeral.
//
//	J/nextid                    next job id (decimal); blocks of ids are
//	                            allocated with a versioned Set
//	J/jobs/<id>                 the record of an active (not finished) job:
//	                            spec, state, holds, array cursor; fixed path
//	                            until the job finishes
//	J/q/<pk>-<id>-<rev>[-a]     queue entry (no data) of a claimable job;
//	                            pk = 1024 - priority, so names sort by
//	                            priority, then id; rev changes with every
//	                            change of the queued record; -a: array job
//	J/run/<id>.<n>              claim n of a job (n counts the job's claims):
//	                            which executor, which tasks; deleted when
//	                            the claim is settled or recovered
//	J/claims/<id>.<n>           ephemeral twin of run/<id>.<n>, owned by the
//	                            executor's session: it vanishes when the
//	                            session dies, which is how a dead executor's
//	                            jobs are found (run entry without claim)
//	J/tasks/<id>/<task>         completion record (accounting) of one task of
//	                            an array job, created exactly once
//	J/done/<id>                 final record of a finished job (state,
//	                            accounting); created exactly once
//	J/names/<name>:<id>         name index of active jobs (-hold_jid and
//	                            qdel by name)
//	J/exec/<executor>~<session> ephemeral host registry entry of a running
//	                            executor (qhost); its name changes with the
//	                            session, so a dead session changes exec/'s
//	                            children and wakes the recovery
//	J/signal/<executor>/<id>.<n> qdel of a running claim, for the executor
//	                            to kill it
const (
	nextIDNode = "nextid"
	jobsDir    = "jobs"
	queueDir   = "q"
	runDir     = "run"
	claimsDir  = "claims"
	tasksDir   = "tasks"
	doneDir    = "done"
	namesDir   = "names"
	execDir    = "exec"
	signalDir  = "signal"
)

// subdirs are the directories Init creates.
var subdirs = []string{jobsDir, queueDir, runDir, claimsDir, tasksDir, doneDir, namesDir, execDir, signalDir}

// Priority bounds of -p.
const (
	MinPriority = -1023
	MaxPriority = 1024
)

// layout computes the paths of one VC's queue.
type layout struct{ root string }

func (l layout) nextID() string           { return l.root + "/" + nextIDNode }
func (l layout) dir(d string) string      { return l.root + "/" + d }
func (l layout) job(id int64) string      { return l.root + "/" + jobsDir + "/" + fmtID(id) }
func (l layout) done(id int64) string     { return l.root + "/" + doneDir + "/" + fmtID(id) }
func (l layout) taskDir(id int64) string  { return l.root + "/" + tasksDir + "/" + fmtID(id) }
func (l layout) entry(e entryName) string { return l.root + "/" + queueDir + "/" + e.String() }
func (l layout) run(c claimName) string   { return l.root + "/" + runDir + "/" + c.String() }
func (l layout) claim(c claimName) string { return l.root + "/" + claimsDir + "/" + c.String() }
func (l layout) name(name string, id int64) string {
	return l.root + "/" + namesDir + "/" + name + ":" + fmtID(id)
}
func (l layout) task(id int64, task int) string {
	return l.taskDir(id) + "/" + strconv.Itoa(task)
}
func (l layout) signals(executor string) string { return l.root + "/" + signalDir + "/" + executor }
func (l layout) signal(executor string, c claimName) string {
	return l.signals(executor) + "/" + c.String()
}
func (l layout) exec(executor string, session int64) string {
	return l.root + "/" + execDir + "/" + executor + "~" + strconv.FormatInt(session, 16)
}

func fmtID(id int64) string { return strconv.FormatInt(id, 10) }

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: job id %q", ErrCorrupt, s)
	}
	return id, nil
}

// entryName is a queue entry: q/<pk>-<id>-<rev>[-a].
type entryName struct {
	Priority int
	ID       int64
	Rev      int
	Array    bool
}

func (e entryName) String() string {
	s := fmt.Sprintf("%04d-%010d-%d", MaxPriority-e.Priority, e.ID, e.Rev)
	if e.Array {
		s += "-a"
	}
	return s
}

// less orders entries by priority (higher first), then id.
func (e entryName) less(o entryName) bool {
	if e.Priority != o.Priority {
		return e.Priority > o.Priority
	}
	return e.ID < o.ID
}

func parseEntry(s string) (entryName, error) {
	parts := strings.Split(s, "-")
	bad := func() (entryName, error) { return entryName{}, fmt.Errorf("%w: queue entry %q", ErrCorrupt, s) }
	if len(parts) != 3 && !(len(parts) == 4 && parts[3] == "a") {
		return bad()
	}
	pk, err1 := strconv.Atoi(parts[0])
	id, err2 := strconv.ParseInt(parts[1], 10, 64)
	rev, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || id <= 0 || rev < 0 {
		return bad()
	}
	return entryName{Priority: MaxPriority - pk, ID: id, Rev: rev, Array: len(parts) == 4}, nil
}

// claimName names claim n of job id: "<id>.<n>".
type claimName struct {
	ID int64
	N  int
}

func (c claimName) String() string { return fmtID(c.ID) + "." + strconv.Itoa(c.N) }

func parseClaim(s string) (claimName, error) {
	a, b, ok := strings.Cut(s, ".")
	id, err1 := strconv.ParseInt(a, 10, 64)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || id <= 0 || n <= 0 {
		return claimName{}, fmt.Errorf("%w: claim %q", ErrCorrupt, s)
	}
	return claimName{ID: id, N: n}, nil
}

// parseNameIndex splits a names/ child "<name>:<id>".
func parseNameIndex(s string) (string, int64, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("%w: name index %q", ErrCorrupt, s)
	}
	id, err := parseID(s[i+1:])
	return s[:i], id, err
}

// parseExec splits an exec/ child "<executor>~<session hex>".
func parseExec(s string) (string, int64, error) {
	i := strings.LastIndexByte(s, '~')
	if i <= 0 {
		return "", 0, fmt.Errorf("%w: executor entry %q", ErrCorrupt, s)
	}
	sess, err := strconv.ParseInt(s[i+1:], 16, 64)
	if err != nil {
		return "", 0, fmt.Errorf("%w: executor entry %q", ErrCorrupt, s)
	}
	return s[:i], sess, nil
}

// validJobName reports whether a job name can be stored in the name index
// (a single znode name element without ':').
func validJobName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/:\x00") || len(name) > 1000 {
		return fmt.Errorf("%w: job name %q", ErrInvalidSpec, name)
	}
	return coord.ValidPath("/" + name)
}
