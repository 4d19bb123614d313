# bench/sge/lib.sh: settings and helpers shared by up.sh, run.sh and down.sh.
# Sourced, never run. Everything can be overridden from the environment.
# shellcheck shell=bash disable=SC2034 # the variables are used by the scripts

# Debian's gridengine packages put the cell here (init_cluster in the postinst).
export SGE_ROOT=${SGE_ROOT:-/var/lib/gridengine}
export SGE_CELL=${SGE_CELL:-default}
export SGE_QMASTER_PORT=${SGE_QMASTER_PORT:-6444}
export SGE_EXECD_PORT=${SGE_EXECD_PORT:-6445}
export SGE_ARCH=${SGE_ARCH:-lx-amd64}

# Where these scripts keep their state: PIDs of the daemons they started,
# the configuration files they fed to qconf, logs.
BENCH_STATE=${MUSUBI_SGE_STATE:-/var/tmp/musubi-bench/sge}
# The ordinary user the benchmark jobs are submitted as and run as.
BENCH_USER=${MUSUBI_SGE_USER:-musubibench}
BENCH_HOST=$(hostname)

# The ELF client binaries. /usr/bin/q* are Debian wrapper scripts that cost
# about 50 ms of CPU per call, ten times the binary itself.
SGE_BIN=/usr/lib/gridengine
SGE_SPOOL=/var/spool/gridengine
QMASTER_PIDFILE=$SGE_SPOOL/qmaster/qmaster.pid

# spooled_execd_pid: the PID in the execd's pid file if that process is alive.
# The execd names its spool directory after its own host name as the resolver
# gives it, which with the host_aliases fix is "localhost", not $BENCH_HOST.
spooled_execd_pid() {
	local f
	for f in "$SGE_SPOOL"/execd/*/execd.pid; do
		if pid_is "$(cat "$f" 2>/dev/null)" sge_execd; then
			cat "$f"
			return 0
		fi
	done
	return 1
}

# Exit code of up.sh and run.sh when Grid Engine cannot be installed or started.
EXIT_UNAVAILABLE=3

say() { printf 'sge-bench: %s\n' "$*" >&2; }
die() { local code=$1; shift; say "error: $*"; exit "$code"; }

# now_us: wall clock in microseconds (bash 5 EPOCHREALTIME, no fork).
now_us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }

# eventually TIMEOUT_S INTERVAL_S DESCRIPTION CMD...: run CMD until it
# succeeds or TIMEOUT_S seconds have passed (then return 1).
eventually() {
	local timeout=$1 interval=$2 what=$3; shift 3
	local deadline=$((SECONDS + timeout))
	until "$@"; do
		if ((SECONDS >= deadline)); then
			say "timed out after ${timeout}s waiting for: $what"
			return 1
		fi
		sleep "$interval"
	done
}

# pid_is PID NAME: PID is alive and runs the program NAME (guards against
# stale pid files and reused PIDs).
pid_is() {
	[ -n "$1" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

# qmaster_up: the qmaster answers on its port.
qmaster_up() { "$SGE_BIN/qping" -info "$BENCH_HOST" "$SGE_QMASTER_PORT" qmaster 1 >/dev/null 2>&1; }

# as_bench CMD...: run CMD as the bench user with the cell's environment.
as_bench() {
	setpriv --reuid="$BENCH_USER" --regid="$BENCH_USER" --init-groups \
		env -i HOME="$(getent passwd "$BENCH_USER" | cut -d: -f6)" USER="$BENCH_USER" LOGNAME="$BENCH_USER" \
		PATH=/usr/bin:/bin SHELL=/bin/sh LANG=C \
		SGE_ROOT="$SGE_ROOT" SGE_CELL="$SGE_CELL" SGE_ARCH="$SGE_ARCH" \
		SGE_QMASTER_PORT="$SGE_QMASTER_PORT" SGE_EXECD_PORT="$SGE_EXECD_PORT" "$@"
}


# host_reports: qhost shows a load value for the exec host (a "-" until the
# execd's first load report).
host_reports() {
	"$SGE_BIN/qhost" -h "$BENCH_HOST" 2>/dev/null |
		awk -v h="$BENCH_HOST" '$1 == h && $7 ~ /^[0-9.]+$/ {ok = 1} END {exit !ok}'
}
# queue_usable SLOTS: qstat -f shows all.q@host with SLOTS slots, a load value
# and no state flags (u unknown, a alarm, d disabled, E error, ...).
queue_usable() {
	local slots=$1
	"$SGE_BIN/qstat" -f -q "all.q@$BENCH_HOST" 2>/dev/null |
		awk -v q="all.q@$BENCH_HOST" -v s="$slots" '
			$1 == q { split($3, u, "/"); if (u[3] == s && $4 ~ /^[0-9.]+$/ && NF == 5) ok = 1 }
			END { exit !ok }'
}
