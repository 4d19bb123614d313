#!/bin/bash
# bench/sge/run.sh: measure the Grid Engine baseline on the cell up.sh built.
#
# Prints human-readable lines ("sge: ...") and one JSON line per figure on
# stdout, e.g.
#   {"bench":"jobs","figure":"sge_trivial_jobs_seconds","value":512.31,"unit":"s","jobs":1000}
# Figures:
#   sge_slots                         slots of all.q (musubi must get the same)
#   sge_trivial_jobs_seconds          N trivial jobs, first submit -> last completion
#   sge_trivial_jobs_per_second       N / the above
#   sge_sync_latency_p50_ms, _p99_ms  `qsub -sync y -b y /bin/true`, submit -> exit
#   sge_qsub_cli_per_second           sequential qsub processes (ELF binary), held jobs
#   sge_qsub_wrapper_cli_per_second   same through Debian's /usr/bin/qsub wrapper
# Knobs (environment):
#   SGE_BENCH_JOBS=1000          trivial jobs for (a); 0 skips it
#   SGE_BENCH_SYNC_SAMPLES=20    qsub -sync y samples for (b); 0 skips it
#   SGE_BENCH_SUBMITS=200        qsub processes for (c); 0 skips it
#   SGE_BENCH_WRAPPER_SUBMITS=50 the same through /usr/bin/qsub; 0 skips it
#   SGE_BENCH_TIMEOUT            seconds allowed for (a) (default 120 + 3 s per job)
# Exit codes: 0 measured, 3 no usable Grid Engine cell (run up.sh), 1 a
# measurement failed (jobs lost, qsub errors, timeout).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

n_jobs=${SGE_BENCH_JOBS:-1000}
n_sync=${SGE_BENCH_SYNC_SAMPLES:-20}
n_submits=${SGE_BENCH_SUBMITS:-200}
n_wrapper=${SGE_BENCH_WRAPPER_SUBMITS:-50}
timeout_a=${SGE_BENCH_TIMEOUT:-$((120 + 3 * n_jobs))}
for v in n_jobs n_sync n_submits n_wrapper timeout_a; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die 1 "$v must be a non-negative integer, got '${!v}'"
done
[ "$(id -u)" = 0 ] || die 1 "must run as root (submits as $BENCH_USER through setpriv)"

unavailable() {
	say "Grid Engine baseline not available: $*"
	exit "$EXIT_UNAVAILABLE"
}
[ -x "$SGE_BIN/qsub" ] || unavailable "Grid Engine is not installed (run bench/sge/up.sh)"
id "$BENCH_USER" >/dev/null 2>&1 || unavailable "no user $BENCH_USER (run bench/sge/up.sh)"
qmaster_up || unavailable "sge_qmaster does not answer on $BENCH_HOST:$SGE_QMASTER_PORT (run bench/sge/up.sh)"
slots=$("$SGE_BIN/qconf" -sq all.q 2>/dev/null | awk '$1 == "slots" {print $2}')
[[ $slots =~ ^[0-9]+$ ]] || unavailable "no queue all.q with a plain slot count (run bench/sge/up.sh)"
queue_usable "$slots" || unavailable "all.q@$BENCH_HOST is not usable: $("$SGE_BIN/qstat" -f 2>&1 | sed -n 3p)"
interval=$("$SGE_BIN/qconf" -ssconf | awk '$1 == "schedule_interval" {print $2}')
[ "$interval" = 0:0:1 ] || say "warning: schedule_interval is $interval, not the fast profile's 0:0:1"

work=$(mktemp -d /tmp/musubi-sge-bench.XXXXXX)
chown "$BENCH_USER" "$work"
trap 'rm -rf "$work"' EXIT

QSUB=$SGE_BIN/qsub
TRIVIAL=(-b y -o /dev/null -e /dev/null)

# --- helpers -------------------------------------------------------------------
human() { printf 'sge: %s\n' "$*"; }
# figure NAME VALUE UNIT [EXTRA_JSON_FIELDS]: one machine-readable line.
figure() { printf '{"bench":"jobs","figure":"%s","value":%s,"unit":"%s"%s}\n' "$1" "$2" "$3" "${4:+,$4}"; }
# load: load average, and CPU pressure (share of the last 10 s in which some
# runnable task waited for a CPU) where the kernel reports it.
load() {
	local psi
	psi=$(awk '$1 == "some" {sub("avg10=", "", $2); print $2}' /proc/pressure/cpu 2>/dev/null || true)
	echo "$(cut -d' ' -f1-3 /proc/loadavg)${psi:+, cpu pressure ${psi}%}"
}
# pct P FILE: nearest-rank percentile of the numbers in FILE (one per line).
pct() { sort -n "$2" | awk -v p="$1" '{a[NR] = $1} END {r = int((p * NR + 99) / 100); if (r < 1) r = 1; print a[r]}'; }
# fmt DECIMALS EXPR: evaluate an arithmetic expression with awk.
fmt() { awk "BEGIN {printf \"%.$1f\", $2}"; }
# remaining: number of the bench user's jobs Grid Engine still knows.
remaining() { "$SGE_BIN/qstat" -u "$BENCH_USER" | awk 'NR > 2' | wc -l; }
none_left() { [ "$(remaining)" = 0 ]; }
# clear_jobs: delete the bench user's jobs and wait until they are gone.
clear_jobs() {
	if [ "$(remaining)" != 0 ]; then
		as_bench "$SGE_BIN/qdel" -u "$BENCH_USER" >/dev/null 2>&1 || true
		eventually 120 0.2 "the jobs of $BENCH_USER to be deleted" none_left
	fi
}
# submit_loop QSUB N OUT [QSUB_ARGS...]: run as the bench user; N sequential
# qsub processes, job ids to OUT, "start_us end_us" of the whole loop on
# stdout and each call's duration in microseconds to OUT.lat.
submit_loop() {
	local qsub=$1 n=$2 out=$3 i t0 t1 start end fails=0
	shift 3
	: >"$out"
	: >"$out.lat"
	start=${EPOCHREALTIME/./}
	for ((i = 0; i < n; i++)); do
		t0=${EPOCHREALTIME/./}
		"$qsub" "$@" >>"$out" || fails=$((fails + 1))
		t1=${EPOCHREALTIME/./}
		echo $((t1 - t0)) >>"$out.lat"
	done
	end=${EPOCHREALTIME/./}
	echo "$start $end $fails"
}
# sync_loop QSUB N OUT: run as the bench user; N `qsub -sync y` of /bin/true,
# each call's duration in microseconds to OUT; prints the number of failures.
sync_loop() {
	local qsub=$1 n=$2 out=$3 i t0 t1 fails=0
	: >"$out"
	for ((i = 0; i < n; i++)); do
		t0=${EPOCHREALTIME/./}
		"$qsub" -sync y -b y -o /dev/null -e /dev/null -N lat /bin/true >/dev/null 2>&1 || fails=$((fails + 1))
		t1=${EPOCHREALTIME/./}
		echo $((t1 - t0)) >>"$out"
	done
	echo "$fails"
}
# bench_user FUNCTION ARGS...: run one of the loops above as the bench user.
bench_user() { as_bench bash -c "$(declare -f "$1"); $(printf '%q ' "$@")"; }

human "Grid Engine $(dpkg-query -W -f='${Version}' gridengine-master) on $BENCH_HOST ($(nproc) CPUs): all.q with $slots slots, schedule_interval $interval, jobs run as $BENCH_USER"
human "load before: $(load)"
figure sge_slots "$slots" slots
clear_jobs
others=$("$SGE_BIN/qstat" -u '*' | awk 'NR > 2' | wc -l)
[ "$others" = 0 ] || say "warning: $others jobs of other users are in the cell and compete for its slots"

# --- (c) qsub as a CLI process -------------------------------------------------
# Held jobs (-h): the scheduler leaves them alone, so only submission is timed.
cli_rate() { # NAME QSUB N
	local name=$1 qsub=$2 n=$3 start end fails secs
	read -r start end fails < <(bench_user submit_loop "$qsub" "$n" "$work/held" -h "${TRIVIAL[@]}" -terse -N held /bin/true) ||
		die 1 "the submission loop as $BENCH_USER did not run"
	[ "$fails" = 0 ] || die 1 "$fails of $n qsub calls failed ($qsub)"
	secs=$(fmt 3 "($end - $start) / 1e6")
	human "qsub CLI ($qsub): $n sequential submissions in ${secs} s, $(fmt 1 "$n / $secs")/s, per call p50 $(fmt 1 "$(pct 50 "$work/held.lat")/1000") ms p99 $(fmt 1 "$(pct 99 "$work/held.lat")/1000") ms; load $(load)"
	figure "$name" "$(fmt 1 "$n / $secs")" "jobs/s" "\"jobs\":$n"
	clear_jobs
}
((n_submits == 0)) || cli_rate sge_qsub_cli_per_second "$QSUB" "$n_submits"
((n_wrapper == 0)) || cli_rate sge_qsub_wrapper_cli_per_second /usr/bin/qsub "$n_wrapper"

# --- (b) single-job latency, qsub -sync y ----------------------------------------
if ((n_sync > 0)); then
	fails=$(bench_user sync_loop "$QSUB" "$n_sync" "$work/sync") ||
		die 1 "the qsub -sync y loop as $BENCH_USER did not run"
	[ "$fails" = 0 ] || die 1 "$fails of $n_sync qsub -sync y calls failed"
	p50=$(fmt 1 "$(pct 50 "$work/sync")/1000")
	p99=$(fmt 1 "$(pct 99 "$work/sync")/1000")
	human "qsub -sync y /bin/true, $n_sync samples: p50 $p50 ms, p99 $p99 ms (nearest rank), min $(fmt 1 "$(pct 0 "$work/sync")/1000") ms; load $(load)"
	figure sge_sync_latency_p50_ms "$p50" ms "\"samples\":$n_sync"
	figure sge_sync_latency_p99_ms "$p99" ms "\"samples\":$n_sync"
fi

# --- (a) N trivial jobs, first submit -> last completion -------------------------
# Completion: the moment `qstat -u $BENCH_USER` lists no job any more (Grid
# Engine drops a job from qstat when its end has been processed). The poll is
# every 2 s while more than 4 jobs per slot remain, then every 0.1 s, so it
# costs the qmaster little and adds at most 0.1 s. Afterwards the accounting
# file must hold a record with failed=0 and exit_status=0 for every job id.
if ((n_jobs > 0)); then
	read -r start submitted fails < <(bench_user submit_loop "$QSUB" "$n_jobs" "$work/ids" "${TRIVIAL[@]}" -terse -N trivial /bin/true) ||
		die 1 "the submission loop as $BENCH_USER did not run"
	[ "$fails" = 0 ] || die 1 "$fails of $n_jobs qsub calls failed"
	human "submitted $n_jobs trivial jobs in $(fmt 2 "($submitted - $start) / 1e6") s ($(fmt 1 "$n_jobs * 1e6 / ($submitted - $start)")/s); load $(load)"
	deadline=$((SECONDS + timeout_a))
	while :; do
		if listing=$("$SGE_BIN/qstat" -u "$BENCH_USER" 2>&1); then
			end=${EPOCHREALTIME/./}
			left=$(printf '%s\n' "$listing" | awk 'NR > 2' | grep -c . || true)
			((left > 0)) || break
		else
			say "qstat failed, retrying: $listing"
			((SECONDS < deadline)) || die 1 "qstat keeps failing"
			sleep 1
			continue
		fi
		if printf '%s\n' "$listing" | awk 'NR > 2 && $5 ~ /E/ {found = 1} END {exit !found}'; then
			clear_jobs
			die 1 "jobs went into an error state (Eqw); see qstat -j"
		fi
		if ((SECONDS >= deadline)); then
			clear_jobs
			die 1 "$left of $n_jobs jobs still not done after ${timeout_a} s"
		fi
		if ((left > 4 * slots)); then sleep 2; else sleep 0.1; fi
	done
	secs=$(fmt 2 "($end - $start) / 1e6")
	rate=$(fmt 2 "$n_jobs / $secs")
	human "$n_jobs trivial jobs (-b y /bin/true) on $slots slots: first submit -> last completion ${secs} s, ${rate} jobs/s; load $(load)"

	# Accounting check: qmaster flushes the accounting file every flush_time
	# (15 s by default), so wait for the records.
	acct=$SGE_ROOT/$SGE_CELL/common/accounting
	acct_check() {
		awk -F: -v ids="$work/ids" '
			BEGIN { while ((getline id < ids) > 0) want[id] = 1 }
			!/^#/ && ($6 in want) && !seen[$6]++ {
				n++; if ($12 != 0 || $13 != 0) bad++
				if (first == "" || $10 < first) first = $10
				if ($11 > last) last = $11
			}
			END { printf "%d %d %s %s\n", n, bad, first, last }' "$acct"
	}
	acct_complete() { read -r got _ < <(acct_check) && [ "$got" = "$n_jobs" ]; }
	eventually 60 1 "$n_jobs accounting records" acct_complete ||
		die 1 "accounting holds $(acct_check | cut -d' ' -f1) records for the $n_jobs jobs"
	read -r got bad first last < <(acct_check)
	[ "$bad" = 0 ] || die 1 "$bad of $n_jobs jobs failed or exited non-zero (accounting)"
	human "accounting: $got records, all exit 0; first start -> last end $((last - first)) s (1 s resolution)"
	figure sge_trivial_jobs_seconds "$secs" s "\"jobs\":$n_jobs"
	figure sge_trivial_jobs_per_second "$rate" "jobs/s" "\"jobs\":$n_jobs"
fi
human "load after: $(load)"
