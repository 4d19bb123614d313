#!/bin/bash
# bench/sge/down.sh: stop the Grid Engine daemons that up.sh started, and only
# those (their PIDs are in $BENCH_STATE). Idempotent: with nothing of ours
# running it just says so. Packages, the cell's spool and the bench user stay;
# the next up.sh starts from them in about a second.
#
# Order: delete the bench user's jobs, `qconf -kej HOST` (execd, killing any
# job still running), `qconf -km` (qmaster); a daemon still alive after 30 s
# gets SIGTERM, then SIGKILL.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

[ "$(id -u)" = 0 ] || die 1 "must run as root"

qm=$(cat "$BENCH_STATE/qmaster.pid" 2>/dev/null)
ex=$(cat "$BENCH_STATE/execd.pid" 2>/dev/null)
pid_is "$qm" sge_qmaster || qm=
pid_is "$ex" sge_execd || ex=

gone() { ! pid_is "$1" "$2"; }
# stop PID NAME: wait for PID to exit after a shutdown request, then signal it.
stop() {
	local pid=$1 name=$2 sig
	for sig in TERM KILL; do
		eventually 30 0.2 "$name (pid $pid) to exit" gone "$pid" "$name" && return 0
		say "$name (pid $pid) still alive: SIG$sig"
		kill -s "$sig" "$pid" 2>/dev/null
	done
	eventually 10 0.2 "$name (pid $pid) to exit after SIGKILL" gone "$pid" "$name"
}

if [ -z "$qm$ex" ]; then
	say "no Grid Engine daemon started by up.sh is running"
else
	if qmaster_up; then
		# Leave no bench job behind in the qmaster's spool.
		"$SGE_BIN/qdel" -u "$BENCH_USER" >/dev/null 2>&1 || true
	fi
	if [ -n "$ex" ]; then
		# Job shepherds are children of the execd; remember them in case one
		# outlives it.
		shepherds=$(pgrep -P "$ex" -x sge_shepherd || true)
		say "stopping sge_execd (pid $ex)"
		qmaster_up && "$SGE_BIN/qconf" -kej "$BENCH_HOST" >&2
		stop "$ex" sge_execd || say "warning: sge_execd pid $ex survived SIGKILL"
		for p in $shepherds; do
			if pid_is "$p" sge_shepherd; then kill -s KILL "$p" 2>/dev/null; fi
		done
	fi
	if [ -n "$qm" ]; then
		say "stopping sge_qmaster (pid $qm)"
		qmaster_up && "$SGE_BIN/qconf" -km >&2
		stop "$qm" sge_qmaster || say "warning: sge_qmaster pid $qm survived SIGKILL"
	fi
fi
# Forget a PID only once its process is gone.
pid_is "$(cat "$BENCH_STATE/qmaster.pid" 2>/dev/null)" sge_qmaster || rm -f "$BENCH_STATE/qmaster.pid"
pid_is "$(cat "$BENCH_STATE/execd.pid" 2>/dev/null)" sge_execd || rm -f "$BENCH_STATE/execd.pid"

left=$(pgrep -a '^sge_' || true)
if [ -n "$left" ]; then
	say "Grid Engine processes still running:"
	printf '%s\n' "$left" >&2
else
	say "no Grid Engine process left"
fi
