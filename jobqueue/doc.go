// Package jobqueue is the Grid Engine compatible batch system of a virtual
// cluster: the job model and its state machine, the exactly-once queue
// recipe on coord.Store, and the claiming side used by the agent's
// executor. The Grid Engine command-line front end is jobqueue/sge, the
// process runner jobqueue/executor.
//
// # States
//
// Jobs carry Grid Engine's state letters: qw (queued), hqw (held: a user,
// operator or system hold, or shown for a queued job whose -hold_jid
// predecessors have not finished), t and r (claimed, running), Eqw (could
// not start, or exited 100), dr (qdel of a running job), and the final
// states done, failed (a Grid Engine failure such as an enforced limit)
// and deleted. State.CanTransition is the state machine; every record
// update of a job that is not an array job goes through it.
//
// # Layout
//
// A queue lives under coord.VCJobsDir(vc) (J below), inside the VC's
// ACL-protected subtree:
//
//	J/nextid                    next job id; ids are allocated in blocks by
//	                            a versioned Set (in the submission's
//	                            transaction), so they increase across all
//	                            sites of the VC (gaps allowed)
//	J/jobs/<id>                 record of an active job (spec, state, holds,
//	                            predecessors, claim, array cursor, gang)
//	J/q/<1024-p>-<id>-<rev>[-a] queue entry of a claimable job: names sort by
//	                            priority (-p, higher first), then id
//	J/run/<id>.<n>              claim n of job id (persistent)
//	J/claims/<id>.<n>           its ephemeral twin, owned by the executor's
//	                            session
//	J/tasks/<id>/<task>         completion record of an array task
//	J/done/<id>                 final record of a finished job, with its
//	                            accounting (qacct)
//	J/names/<name>:<id>         name index of active jobs
//	J/exec/<executor>~<session> ephemeral host registry entry (qhost)
//	J/signal/<executor>/<id>.<n> qdel of claim n, for that executor
//
// # Recipe
//
// Submission creates each job's record, name index and queue entry in one
// transaction per batch, which also allocates the ids: a versioned Set of
// the id counter from the value and version the submitter last saw (read
// again only after another submitter moved it), so that a qsub is one
// write and no read. A batch too large for one transaction allocates its
// ids first, by the Set alone. A claim is one transaction,
// Multi(Delete(entry), Set(record, version) to r, Create(run),
// Create(claim, ephemeral)); settling it is another, Multi(Delete(record,
// version), Delete(claim), Delete(run), Delete(name), Create(done)) for a
// finished job, or a versioned Set that requeues it (exit 99), puts it in
// Eqw, or gives it back. Deleting the claim fails when the claim vanished,
// so an executor that lost its session never completes the job; the done
// record is created once, so no job completes twice. A write whose
// outcome is unknown (coord.ErrConnectionLost) is resolved with
// coord.Resolve by reading back what it wrote: the submission's random
// token in its first job (a submitter that won the same counter version
// created that id too), the claim's random token, the claim number
// recorded as settled, a task record of that claim.
//
// The jobs of a batch submitted through an executor's SubmitHere that the
// executor can start at once (its Claim waits for work with room for
// them, and the queue has not changed since it was listed) skip the
// queue: they are created claimed, Create(record, r), Create(name),
// Create(run), Create(claim, ephemeral), in the batch's transaction with
// the id counter's Set; one write for what is otherwise a submission, a
// claim per job and the reads between them.
//
// A run entry without its claim belongs to a dead session: any executor's
// Run notices (the host registry's children change, since entries are
// named by session) and gives the job back in one transaction that deletes
// the run entry (Queue.Recover): a rerun, as Grid Engine's -r y, or a
// failure for -r n, or deleted for a job in dr.
//
// Consumers list the queue with a child watch and wait on watches, never
// polling. They spread over the queue: each prefers the entries of its own
// class (job id modulo the number of live executors) within a window at
// the head of the highest priority band, relists after two lost races, and
// caches records by entry name (every change of a queued record renames its
// entry). A job waits for its -hold_jid predecessors (ids, names and
// patterns resolved at submission; array jobs count as one job) until their
// records leave jobs/, watched by ExistsW.
//
// An array job is one record with a task cursor. Claims take chunks of the
// tasks the executor has room for (at most MaxChunk, and within -tc: the
// tasks claimed minus the completion records under tasks/<id>), advancing
// the cursor by a versioned Set; tasks complete by creating their records,
// which needs no write to the job record, and the last settler finishes the
// job (a consumer or recovery does if it died first).
//
// A parallel job whose PE spans hosts (any PE but the single-host ones,
// "smp" by default) runs on one executor if it has the slots; otherwise
// executors that opt in (ExecutorConfig.JoinGangs) take shares of its slots
// (slave leases) until one completes the gang and runs the job with every
// share in its PE_HOSTFILE.
//
// # Not supported
//
// Grid Engine's scheduler policies beyond priority and submission order
// (tickets, share tree, resource reservation -R, -now), consumable
// resources other than slots and mem_free, task-wise -hold_jid_ad (a job
// waits for the whole predecessor array), suspension (qmod -sj),
// checkpointing, tight PE integration
// (qrsh -inherit: slaves run nothing by themselves), and qacct records of
// pruned jobs (Queue.Prune).
package jobqueue
