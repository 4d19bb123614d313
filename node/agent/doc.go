// Package agent is `musubi agent`, the daemon of a node: it wires the
// concrete coordination store (coord/zkstore) to the job queue of the
// node's virtual cluster, registers the node as an execution host, claims
// and runs the jobs that fit the node's free slots and memory with the
// Grid Engine compatible runner (jobqueue/executor), and serves the Grid
// Engine commands of the node on a local unix socket (node/agentapi).
// Concurrent submissions are written together (group commit), and the
// jobs the node can start at once are created already claimed by it, in
// the same write (jobqueue.Executor.SubmitHere).
//
// Shutdown (ctx cancelled, e.g. SIGTERM): the agent stops claiming, kills
// the jobs it runs and reschedules them (their run is recorded, qstat shows
// Rq, and they run again with RESTARTED=1, on another node or on this one
// after a restart, as Grid Engine's -r y), except jobs submitted with -r n,
// which are recorded as ended by the kill. Waiting for running jobs instead
// would hold a shutdown hostage to the longest job; their claims are not
// simply left to expire either, since that would delay the rerun by a
// session timeout.
// It then removes its host registration, closes the API socket and its
// coordination session, and returns once every goroutine has ended.
//
// An agent killed outright (SIGKILL, OOM) takes its jobs' main processes
// with it (their parent-death signal); the next agent started on the node
// kills what those jobs left running, from the process groups recorded in
// the spool directory, before it runs anything (executor.KillLeftovers).
// The jobs themselves run again once the dead agent's session expires.
package agent
