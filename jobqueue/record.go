package jobqueue

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// record is what J/jobs/<id> holds for an active job, and J/done/<id> for a
// finished one (with Final set).
type record struct {
	ID    int64        `json:"id"`
	Spec  *sge.JobSpec `json:"spec"`
	State State        `json:"state"`
	// Holds are the hold letters in effect (u: user, o: operator, s:
	// system), sorted.
	Holds string `json:"holds,omitempty"`
	// Preds are the -hold_jid predecessors resolved at submission (or
	// qalter): active job ids.
	Preds []int64 `json:"preds,omitempty"`
	// Rev is the queue entry revision: it changes with every change of the
	// record while queued, so consumers' caches keyed by entry name stay
	// valid.
	Rev int `json:"rev"`
	// Queued is true while the queue entry q/<entry> exists.
	Queued    bool      `json:"queued,omitempty"`
	Submitted time.Time `json:"submitted"`
	// Claims counts the claims made so far; claim n is run/<id>.<n>.
	Claims int `json:"claims,omitempty"`
	// Restarts counts reruns after a lost claim (executor died) or exit 99.
	Restarts int `json:"restarts,omitempty"`
	// Rescheduled: the last run asked to be rerun (exit 99, Grid Engine's Rq).
	Rescheduled bool `json:"rescheduled,omitempty"`
	// Claim is the current claim of a job that is not an array job.
	Claim *claimInfo `json:"claim,omitempty"`
	// Array is the task bookkeeping of an array job.
	Array *arrayState `json:"array,omitempty"`
	// Gang are the slot shares other executors hold for a parallel job
	// whose PE spans hosts: gathered while the job is queued, kept while it
	// runs on the executor that completed the gang (Claim).
	Gang []claimInfo `json:"gang,omitempty"`
	// ErrorReason says why the job is in Eqw.
	ErrorReason string    `json:"error_reason,omitempty"`
	ErrorTime   time.Time `json:"error_time,omitzero"`
	// History is the accounting of earlier runs (rescheduled, or lost).
	History []Accounting `json:"history,omitempty"`
	// Sub is the token of the submission transaction, in the first job it
	// created, used to resolve a submission whose outcome is unknown.
	Sub string `json:"sub,omitempty"`
	// Op is the token of the last user operation applied (qdel, qhold...),
	// used to resolve an operation whose outcome is unknown.
	Op string `json:"op,omitempty"`
	// Settled is the number of the last claim whose executor settled it.
	Settled int `json:"settled,omitempty"`
	// DeletedBy is who requested deletion.
	DeletedBy string `json:"deleted_by,omitempty"`
	// Final is set in done/<id>: the job's final state and, for a job that
	// is not an array job, the accounting of its last run.
	Final *Accounting `json:"final,omitempty"`
	// Finished is when the job reached its final state.
	Finished time.Time `json:"finished,omitzero"`
}

// claimInfo describes one claim: run/<id>.<n> and claims/<id>.<n> hold it,
// and record.Claim for a job that is not an array job.
type claimInfo struct {
	N        int       `json:"n"`
	Executor string    `json:"exec"`
	Host     string    `json:"host"`
	Session  int64     `json:"session"`
	Token    string    `json:"token"`
	Start    time.Time `json:"start"`
	Slots    int       `json:"slots"`
	Tasks    []int     `json:"tasks,omitempty"` // array chunk
	// Hosts is the PE allocation (master first) when the job spans
	// several executors' slots; nil for one host.
	Hosts []PEHost `json:"hosts,omitempty"`
	// Share marks a slave's share of a parallel job's slots.
	Share bool `json:"share,omitempty"`
}

// arrayState is the task cursor of an array job.
type arrayState struct {
	// Cursor is the index (in the task range) of the next task never
	// claimed.
	Cursor int `json:"cursor"`
	// Reruns are tasks to claim again: their claim was lost.
	Reruns []int `json:"reruns,omitempty"`
	// Claimed counts tasks claimed and not given back: running or
	// finished. The finished ones are the children of tasks/<id> (a task's
	// completion record is written once and never removed, and only for a
	// claimed task), so Claimed minus that count is the number of tasks
	// running (-tc), and the job is finished when it is zero and no task
	// is left to claim.
	Claimed int `json:"claimed"`
	// Deleted are tasks removed before they ran (qdel J.t).
	Deleted []int `json:"deleted,omitempty"`
	// ErrorTasks are tasks in Eqw.
	ErrorTasks []int `json:"error_tasks,omitempty"`
}

func (r *record) clone() *record {
	c := *r
	c.Preds = slices.Clone(r.Preds)
	c.History = slices.Clone(r.History)
	c.Gang = slices.Clone(r.Gang)
	if r.Claim != nil {
		cl := *r.Claim
		cl.Tasks = slices.Clone(cl.Tasks)
		cl.Hosts = slices.Clone(cl.Hosts)
		c.Claim = &cl
	}
	if r.Array != nil {
		a := *r.Array
		a.Reruns = slices.Clone(a.Reruns)
		a.Deleted = slices.Clone(a.Deleted)
		a.ErrorTasks = slices.Clone(a.ErrorTasks)
		c.Array = &a
	}
	if r.Final != nil {
		f := *r.Final
		c.Final = &f
	}
	return &c
}

func (r *record) isArray() bool { return r.Spec != nil && r.Spec.Array != nil }

// gangSlots is the number of slots the gang's shares hold.
func (r *record) gangSlots() int {
	n := 0
	for _, g := range r.Gang {
		n += g.Slots
	}
	return n
}

// share returns the index of gang share n, or -1.
func (r *record) share(n int) int {
	return slices.IndexFunc(r.Gang, func(g claimInfo) bool { return g.N == n })
}

func (r *record) entry() entryName {
	return entryName{Priority: r.Spec.Priority, ID: r.ID, Rev: r.Rev, Array: r.isArray()}
}

func (r *record) setState(to State) error {
	if err := checkTransition(r.State, to); err != nil {
		return fmt.Errorf("job %d: %w", r.ID, err)
	}
	r.State = to
	return nil
}

// pendingState is the state a job not held by an executor returns to:
// held when a hold is set, queued otherwise.
func (r *record) pendingState() State {
	if r.Holds != "" {
		return StateHeld
	}
	return StateQueued
}

// nextTasks returns up to n tasks of an array job that may be claimed now:
// reruns first, then the cursor onward, skipping deleted tasks; and the
// cursor after them.
func (r *record) nextTasks(n int) (tasks []int, cursor int, reruns []int) {
	a := r.Array
	if r.State == StateDeleting {
		return nil, a.Cursor, slices.Clone(a.Reruns)
	}
	reruns = a.Reruns
	for len(tasks) < n && len(reruns) > 0 {
		tasks = append(tasks, reruns[0])
		reruns = reruns[1:]
	}
	rng := r.Spec.Tasks()
	count := rng.Count()
	cursor = a.Cursor
	for len(tasks) < n && cursor < count {
		t := rng.First + cursor*rng.Step
		cursor++
		if slices.Contains(a.Deleted, t) {
			continue
		}
		tasks = append(tasks, t)
	}
	return tasks, cursor, slices.Clone(reruns)
}

// unclaimed returns the tasks of an array job that were never claimed or
// must be claimed again, in order.
func (r *record) unclaimed() []int {
	if r.Array == nil {
		return nil
	}
	tasks, _, _ := r.nextTasks(int(^uint(0) >> 1))
	slices.Sort(tasks)
	return tasks
}

// hasUnclaimed reports whether an array job has a task to claim.
func (r *record) hasUnclaimed() bool {
	t, _, _ := r.nextTasks(1)
	return len(t) > 0
}

func addHolds(cur, add string) string {
	set := map[rune]bool{}
	for _, c := range cur + add {
		set[c] = true
	}
	return holdString(set)
}

func removeHolds(cur, rm string) string {
	set := map[rune]bool{}
	for _, c := range cur {
		set[c] = true
	}
	for _, c := range rm {
		delete(set, c)
	}
	return holdString(set)
}

func holdString(set map[rune]bool) string {
	var b strings.Builder
	for _, c := range "ous" {
		if set[c] {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// validHolds checks a hold letter list (Grid Engine's -h u|o|s).
func validHolds(h string) error {
	if h == "" {
		return fmt.Errorf("%w: empty hold list", ErrInvalidSpec)
	}
	for _, c := range h {
		if !strings.ContainsRune("ous", c) {
			return fmt.Errorf("%w: hold %q: use u, o or s", ErrInvalidSpec, h)
		}
	}
	return nil
}

func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("jobqueue: encode %T: %w", v, err)
	}
	return b, nil
}

func decodeRecord(p string, data []byte) (*record, error) {
	r := &record{}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, p, err)
	}
	if r.Spec == nil || r.ID <= 0 || !r.State.Valid() {
		return nil, fmt.Errorf("%w: %s: incomplete record", ErrCorrupt, p)
	}
	if r.Spec.Array != nil && r.Array == nil {
		r.Array = &arrayState{}
	}
	return r, nil
}

func decodeClaim(p string, data []byte) (*claimInfo, error) {
	c := &claimInfo{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, p, err)
	}
	return c, nil
}
