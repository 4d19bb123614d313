// Package jobqueue is the Grid Engine compatible batch system of a virtual
// cluster: the job model and its state machine, the exactly-once queue
// recipe on coord.Store, placement, and the executor used by the agent. The
// Grid Engine command-line front end is jobqueue/sge.
package jobqueue
