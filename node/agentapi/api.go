package agentapi

import (
	"context"
	"errors"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// DefaultSocket is where the agent listens and the commands connect when
// EnvSocket is not set.
const DefaultSocket = "/run/musubi/agent.sock"

// EnvSocket names the environment variable holding the agent's socket path.
const EnvSocket = "MUSUBI_AGENT_SOCKET"

// Caller is the process on the other end of the socket, as the kernel
// reports it (SO_PEERCRED), with its user and group names looked up on the
// agent's host.
type Caller struct {
	PID   int32  `json:"pid"`
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	User  string `json:"user"`
	Group string `json:"group"`
}

// IsRoot reports whether the caller is root, who may act on every job.
func (c Caller) IsRoot() bool { return c.UID == 0 }

// Backend does what the API's requests ask for; node/agent implements it on
// the job queue. Every method receives the verified caller.
type Backend interface {
	// Submit queues the jobs (in one batch where possible) as the caller
	// and returns their ids in order.
	Submit(ctx context.Context, c Caller, specs []*sge.JobSpec) ([]int64, error)
	// Wait blocks until the job has finished and says how each of its
	// tasks ended (qsub -sync y).
	Wait(ctx context.Context, c Caller, id int64) ([]sge.SyncResult, error)
	// Jobs lists the active jobs of the given users (empty or "*": all).
	Jobs(ctx context.Context, c Caller, users []string) ([]*jobqueue.Job, error)
	// Details returns the active jobs named by refs (ids, names, patterns;
	// empty: all) with their successors, and the refs that match nothing.
	Details(ctx context.Context, c Caller, refs []string) (DetailsResponse, error)
	// Delete is qdel.
	Delete(ctx context.Context, c Caller, r DeleteRequest) ([]sge.DeleteResult, error)
	// Hold is qhold and qrls.
	Hold(ctx context.Context, c Caller, r HoldRequest) (Output, error)
	// Alter is qalter.
	Alter(ctx context.Context, c Caller, r *sge.QalterRequest) (Output, error)
	// Accounting returns the accounting of a job, active or finished
	// (qacct -j).
	Accounting(ctx context.Context, c Caller, ref string) ([]AccountedJob, error)
	// Hosts returns the host registry and, with jobs, the running jobs
	// (qhost, qstat -f).
	Hosts(ctx context.Context, c Caller, jobs bool) (HostsResponse, error)
}

// SubmitRequest queues jobs. The submitter's user, uid, group and gid in
// the specs are replaced by the caller's.
type SubmitRequest struct {
	Specs []*sge.JobSpec `json:"specs"`
}

// SubmitResponse carries the ids of the queued jobs, in request order.
type SubmitResponse struct {
	IDs []int64 `json:"ids"`
}

// WaitRequest waits for a job to finish.
type WaitRequest struct {
	ID int64 `json:"id"`
}

// WaitResponse says how the job's tasks ended, in the order they ended.
type WaitResponse struct {
	Results []sge.SyncResult `json:"results"`
}

// JobsRequest lists active jobs.
type JobsRequest struct {
	Users []string `json:"users,omitempty"`
}

// JobsResponse lists jobs; their scripts are left out.
type JobsResponse struct {
	Jobs []*jobqueue.Job `json:"jobs"`
}

// DetailsRequest asks for qstat -j.
type DetailsRequest struct {
	Refs []string `json:"refs,omitempty"`
}

// DetailsResponse is what qstat -j shows.
type DetailsResponse struct {
	Jobs []*jobqueue.Job `json:"jobs"`
	// Successors maps a job id to the jobs waiting for it.
	Successors map[int64][]int64 `json:"successors,omitempty"`
	// Unknown are the refs that match no active job.
	Unknown []string `json:"unknown,omitempty"`
}

// DeleteRequest is qdel's job list and -u users.
type DeleteRequest struct {
	Jobs  []sge.JobTaskRef `json:"jobs,omitempty"`
	Users []string         `json:"users,omitempty"`
	Force bool             `json:"force,omitempty"`
}

// DeleteResponse holds one result per line qdel prints.
type DeleteResponse struct {
	Results []sge.DeleteResult `json:"results"`
}

// HoldRequest is qhold (Release false) or qrls (Release true).
type HoldRequest struct {
	Release bool             `json:"release,omitempty"`
	Holds   string           `json:"holds,omitempty"`
	Jobs    []sge.JobTaskRef `json:"jobs,omitempty"`
	Users   []string         `json:"users,omitempty"`
}

// AlterRequest is a parsed qalter command line.
type AlterRequest struct {
	Request *sge.QalterRequest `json:"request"`
}

// Output is what a command prints: lines for stdout and stderr, and its
// exit status.
type Output struct {
	Stdout []string `json:"stdout,omitempty"`
	Stderr []string `json:"stderr,omitempty"`
	Exit   int      `json:"exit"`
}

// AccountingRequest asks for the accounting of a job (id or name).
type AccountingRequest struct {
	Job string `json:"job"`
}

// AccountedJob is a job's specification (script left out) and its
// accounting records.
type AccountedJob struct {
	Spec    *sge.JobSpec          `json:"spec"`
	Records []jobqueue.Accounting `json:"records"`
}

// AccountingResponse holds the accounted jobs.
type AccountingResponse struct {
	Jobs []AccountedJob `json:"jobs"`
}

// HostsRequest asks for the host registry.
type HostsRequest struct {
	Jobs bool `json:"jobs,omitempty"`
}

// Host is one executor of the registry with the slots its claims use.
type Host struct {
	jobqueue.HostInfo
	SlotsUsed int `json:"slots_used"`
}

// HostsResponse is the host registry and, when asked for, the active jobs.
type HostsResponse struct {
	Hosts []Host          `json:"hosts"`
	Jobs  []*jobqueue.Job `json:"jobs,omitempty"`
	// Now is the agent's clock when it answered.
	Now time.Time `json:"now"`
}

// Error kinds carried by the API's error responses.
const (
	KindInvalid     = "invalid"     // a malformed request
	KindPermission  = "permission"  // the caller may not do this
	KindNotFound    = "not_found"   // no such job
	KindUnavailable = "unavailable" // the coordination store cannot be reached
	KindInternal    = "internal"    // anything else
)

// Sentinel errors of the client; errors returned by Client methods match
// one of them (errors.Is) when the agent answered with an error.
var (
	// ErrUnreachable: no agent answers on the socket.
	ErrUnreachable = errors.New("agentapi: agent not reachable")
	// ErrInvalid: the agent refused a malformed request.
	ErrInvalid = errors.New("agentapi: invalid request")
	// ErrPermission: the caller may not do this.
	ErrPermission = errors.New("agentapi: permission denied")
	// ErrNotFound: no such job.
	ErrNotFound = errors.New("agentapi: no such job")
	// ErrUnavailable: the agent cannot reach the coordination store.
	ErrUnavailable = errors.New("agentapi: queue unavailable")
	// ErrInternal: the agent failed.
	ErrInternal = errors.New("agentapi: agent error")
)

// errorBody is the JSON body of an error response.
type errorBody struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	// SGE is a Grid Engine error to print as is (rejected submission...).
	SGE *sge.Error `json:"sge,omitempty"`
}

// Error is an error answered by the agent.
type Error struct {
	Kind    string
	Message string
	// SGE is set when the agent answered with a Grid Engine error.
	SGE *sge.Error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel of the kind, and the Grid Engine error.
func (e *Error) Unwrap() []error {
	var s error
	switch e.Kind {
	case KindInvalid:
		s = ErrInvalid
	case KindPermission:
		s = ErrPermission
	case KindNotFound:
		s = ErrNotFound
	case KindUnavailable:
		s = ErrUnavailable
	default:
		s = ErrInternal
	}
	if e.SGE != nil {
		return []error{s, e.SGE}
	}
	return []error{s}
}

// API paths.
const (
	pathSubmit     = "/v1/submit"
	pathWait       = "/v1/wait"
	pathJobs       = "/v1/jobs"
	pathDetails    = "/v1/details"
	pathDelete     = "/v1/delete"
	pathHold       = "/v1/hold"
	pathAlter      = "/v1/alter"
	pathAccounting = "/v1/accounting"
	pathHosts      = "/v1/hosts"
	pathWhoami     = "/v1/whoami"
)
