package jobqueue

import "fmt"

// State is a job's state, named by Grid Engine's state letters where Grid
// Engine has one (qstat's state column), and by the final states musubi
// records for finished jobs.
type State string

// Job states.
const (
	// StateQueued is "qw": pending, waiting to be claimed. A job waiting for
	// unfinished -hold_jid predecessors is StateQueued in the store and
	// shown as "hqw" (see Job.DisplayState).
	StateQueued State = "qw"
	// StateHeld is "hqw": pending with a user, operator or system hold.
	StateHeld State = "hqw"
	// StateTransferring is "t": claimed by an executor, not yet started.
	StateTransferring State = "t"
	// StateRunning is "r": running on an executor.
	StateRunning State = "r"
	// StateError is "Eqw": the job could not start (or exited 100) and
	// waits in error until cleared or deleted.
	StateError State = "Eqw"
	// StateDeleting is "dr": qdel was requested while the job was running;
	// its executor is killing it.
	StateDeleting State = "dr"
	// StateDone is final: the job ran to completion (whatever its exit
	// status).
	StateDone State = "done"
	// StateFailed is final: the job ended with a Grid Engine failure (a
	// limit was enforced, it could not be run).
	StateFailed State = "failed"
	// StateDeleted is final: the job was deleted (qdel).
	StateDeleted State = "deleted"
)

// States lists every state, non-final first.
var States = []State{StateQueued, StateHeld, StateTransferring, StateRunning, StateError, StateDeleting, StateDone, StateFailed, StateDeleted}

// Final reports whether s is a final state: the job left the queue for good.
func (s State) Final() bool { return s == StateDone || s == StateFailed || s == StateDeleted }

// Pending reports whether s is a state of a job waiting to run.
func (s State) Pending() bool { return s == StateQueued || s == StateHeld || s == StateError }

// Active reports whether an executor holds the job (t, r, dr).
func (s State) Active() bool {
	return s == StateTransferring || s == StateRunning || s == StateDeleting
}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}

// String returns the state letters.
func (s State) String() string { return string(s) }

// transitions is the state machine: transitions[from][to] is legal. A
// record update that keeps the state (qalter of a queued job) is not a
// transition and always allowed for non-final states.
var transitions = map[State]map[State]bool{
	StateQueued: {
		StateHeld:         true, // qhold, or an alteration adding a hold
		StateTransferring: true, // claimed
		StateRunning:      true, // claimed and started in one step
		StateDeleted:      true, // qdel
	},
	StateHeld: {
		StateQueued:  true, // qrls
		StateDeleted: true, // qdel
	},
	StateTransferring: {
		StateRunning:  true, // started
		StateQueued:   true, // claim lost (executor died), rerun
		StateHeld:     true, // claim lost while a hold was set
		StateError:    true, // the job cannot start (output file, shell...)
		StateDeleting: true, // qdel
		StateDone:     true,
		StateFailed:   true,
	},
	StateRunning: {
		StateQueued:   true, // claim lost (executor died) or exit 99: rerun
		StateHeld:     true, // rerun while a hold was set
		StateError:    true, // exit 100
		StateDeleting: true, // qdel
		StateDone:     true,
		StateFailed:   true,
	},
	StateDeleting: {
		StateDeleted: true, // killed, or its executor died
		StateDone:    true, // it finished before it could be killed
		StateFailed:  true,
	},
	StateError: {
		StateQueued:  true, // error cleared (qmod -cj)
		StateHeld:    true, // error cleared while a hold is set
		StateDeleted: true, // qdel
	},
}

// CanTransition reports whether a job may go from s to to. Final states
// have no way out.
func (s State) CanTransition(to State) bool { return transitions[s][to] }

// checkTransition returns ErrIllegalTransition unless s may become to or
// stays the same non-final state.
func checkTransition(from, to State) error {
	if from == to && !from.Final() && from.Valid() {
		return nil
	}
	if !from.CanTransition(to) {
		return fmt.Errorf("%w: %s -> %s", ErrIllegalTransition, from, to)
	}
	return nil
}
