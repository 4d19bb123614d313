#!/bin/bash
# bench/sge/up.sh [SLOTS]: bring up a real Grid Engine 8.1.9 single-host cell
# for the baseline of `make bench`. Idempotent: run it again and it only does
# what is missing.
#
#   1. installs gridengine-{master,exec,client} from Debian (debconf preseed)
#   2. creates the ordinary user the bench jobs run as ($BENCH_USER)
#   3. starts sge_qmaster, configures a queue all.q with SLOTS slots (default:
#      number of CPUs, or $SGE_BENCH_SLOTS) and the fast scheduler profile
#   4. starts sge_execd and waits until the queue can run jobs
#
# The PIDs of the daemons it started go to $BENCH_STATE/*.pid; down.sh stops
# only those. Exit codes: 0 cell ready, 3 Grid Engine cannot be installed or
# started here (the bench then reports musubi alone), 1 anything else.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

slots=${1:-${SGE_BENCH_SLOTS:-$(nproc)}}
[[ $slots =~ ^[1-9][0-9]*$ ]] || die 1 "slot count must be a positive integer, got '$slots'"
[ "$(id -u)" = 0 ] || die "$EXIT_UNAVAILABLE" "must run as root (installs packages, starts daemons)"

mkdir -p "$BENCH_STATE/conf" "$BENCH_STATE/log"
started=$SECONDS

# --- 1. packages -------------------------------------------------------------
packages=(gridengine-master gridengine-exec gridengine-client)
installed() {
	local p
	for p in "${packages[@]}"; do
		[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || return 1
	done
}
if ! installed; then
	say "installing ${packages[*]} (debconf preseed, master host $BENCH_HOST)"
	# Without the preseed, debconf asks whether to configure the cell and for
	# the master's host name; the postinst then runs init_cluster for us.
	for p in gridengine-common gridengine-master gridengine-exec gridengine-client; do
		printf '%s shared/gridengineconfig boolean true\n' "$p"
		printf '%s shared/gridenginecell string %s\n' "$p" "$SGE_CELL"
		printf '%s shared/gridenginemaster string %s\n' "$p" "$BENCH_HOST"
	done >"$BENCH_STATE/conf/debconf-preseed"
	debconf-set-selections "$BENCH_STATE/conf/debconf-preseed" ||
		die "$EXIT_UNAVAILABLE" "debconf-set-selections failed"
	apt_install() {
		DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 \
			install -y --no-install-recommends "${packages[@]}" >>"$BENCH_STATE/log/apt.log" 2>&1
	}
	if ! apt_install; then
		say "apt-get install failed; refreshing the package lists once"
		apt-get -q update >>"$BENCH_STATE/log/apt.log" 2>&1 || true
		apt_install || die "$EXIT_UNAVAILABLE" "cannot install ${packages[*]} (see $BENCH_STATE/log/apt.log)"
	fi
	installed || die "$EXIT_UNAVAILABLE" "packages still not installed (see $BENCH_STATE/log/apt.log)"
fi
common=$SGE_ROOT/$SGE_CELL/common
if ! [ -s "$common/bootstrap" ] || ! [ -s "$common/act_qmaster" ]; then
	die "$EXIT_UNAVAILABLE" "$common has no cell (postinst did not run init_cluster?); try: dpkg-reconfigure gridengine-master"
fi
if [ "$(cat "$common/act_qmaster")" != "$BENCH_HOST" ]; then
	say "act_qmaster names '$(cat "$common/act_qmaster")', this host is '$BENCH_HOST': rewriting it"
	echo "$BENCH_HOST" >"$common/act_qmaster"
fi

# --- 2. host name as Grid Engine sees it --------------------------------------
# Grid Engine compares the name a client claims with the reverse lookup of its
# address. Here the host name resolves to 127.0.0.1, which reverse-resolves to
# "localhost", and every client is refused ("access denied ... client IP
# resolved to host name localhost"). host_aliases makes both names one host,
# without touching /etc/hosts.
addr=$(getent hosts "$BENCH_HOST" | awk '{print $1; exit}')
[ -n "$addr" ] || die "$EXIT_UNAVAILABLE" "host name $BENCH_HOST does not resolve"
rname=$(getent hosts "$addr" | awk '{print $2; exit}')
if [ -n "$rname" ] && [ "$rname" != "$BENCH_HOST" ]; then
	line="$BENCH_HOST $rname"
	if [ "$(cat "$common/host_aliases" 2>/dev/null)" != "$line" ]; then
		echo "$line" >"$common/host_aliases"
		chown --reference="$common/bootstrap" "$common/host_aliases"
		say "host_aliases: $line"
	fi
fi

# --- 3. bench user -------------------------------------------------------------
if ! id "$BENCH_USER" >/dev/null 2>&1; then
	useradd --create-home --shell /bin/bash --comment "musubi bench jobs" "$BENCH_USER" ||
		die 1 "cannot create user $BENCH_USER"
	say "created user $BENCH_USER"
fi

# --- 4. qmaster ----------------------------------------------------------------
if qmaster_up; then
	if pid_is "$(cat "$BENCH_STATE/qmaster.pid" 2>/dev/null)" sge_qmaster; then
		say "sge_qmaster already running (pid $(cat "$BENCH_STATE/qmaster.pid"), started by up.sh)"
	else
		say "sge_qmaster already running, not started by up.sh: using it, down.sh will leave it alone"
	fi
else
	if pgrep -x sge_qmaster >/dev/null; then
		die "$EXIT_UNAVAILABLE" "an sge_qmaster is running but does not answer on port $SGE_QMASTER_PORT: $(pgrep -ax sge_qmaster)"
	fi
	rm -f "$BENCH_STATE/qmaster.pid"
	say "starting sge_qmaster"
	/usr/sbin/sge_qmaster >>"$BENCH_STATE/log/qmaster.out" 2>&1 ||
		die "$EXIT_UNAVAILABLE" "sge_qmaster failed to start (see $SGE_SPOOL/qmaster/messages)"
	eventually 60 0.2 "sge_qmaster to answer" qmaster_up ||
		die "$EXIT_UNAVAILABLE" "sge_qmaster does not answer (see $SGE_SPOOL/qmaster/messages)"
	pid=$(cat "$QMASTER_PIDFILE" 2>/dev/null || true)
	pid_is "$pid" sge_qmaster || die "$EXIT_UNAVAILABLE" "no live sge_qmaster behind $QMASTER_PIDFILE"
	echo "$pid" >"$BENCH_STATE/qmaster.pid"
	say "sge_qmaster pid $pid"
fi

# --- 5. cell configuration (re-applied every time; cheap) ----------------------
# qconf: the ELF binary; its chatter ("root@vm modified ...") goes to the log,
# and is shown only when the command fails.
qconf() {
	local out rc=0
	out=$("$SGE_BIN/qconf" "$@" 2>&1) || rc=$?
	printf '+ qconf %s\n%s\n' "$*" "$out" >>"$BENCH_STATE/log/qconf.log"
	if [ "$rc" != 0 ]; then
		say "qconf $* failed (exit $rc): $out"
		return "$rc"
	fi
	case $1 in -s*) printf '%s\n' "$out" ;; esac
}
# edit_with SED_SCRIPT QCONF_ARGS...: run an interactive qconf command with an
# "editor" that applies SED_SCRIPT to the template qconf offers.
edit_with() {
	local sed_script=$1; shift
	local editor=$BENCH_STATE/conf/editor.sh
	# shellcheck disable=SC2016 # "$1" belongs to the editor script
	printf '#!/bin/sh\nexec sed -i -f %s "$1"\n' "$BENCH_STATE/conf/editor.sed" >"$editor"
	chmod +x "$editor"
	printf '%s\n' "$sed_script" >"$BENCH_STATE/conf/editor.sed"
	EDITOR=$editor qconf "$@"
}

# Global configuration: no mail to root on job errors (no MTA runs here).
qconf -sconf global | sed -e '/^#/d' -e 's/^administrator_mail .*/administrator_mail none/' >"$BENCH_STATE/conf/global"
qconf -Mconf "$BENCH_STATE/conf/global" >/dev/null

# This host submits and executes.
qconf -ss 2>/dev/null | grep -qx "$BENCH_HOST" || qconf -as "$BENCH_HOST" >/dev/null
if ! qconf -se "$BENCH_HOST" >/dev/null 2>&1; then
	cat >"$BENCH_STATE/conf/exechost" <<EOF
hostname              $BENCH_HOST
load_scaling          NONE
complex_values        NONE
user_lists            NONE
xuser_lists           NONE
projects              NONE
xprojects             NONE
usage_scaling         NONE
report_variables      NONE
EOF
	qconf -Ae "$BENCH_STATE/conf/exechost" >/dev/null
fi

# Queue all.q on this host with $slots slots. load_thresholds NONE: the stock
# np_load_avg=1.75 would put the queue in alarm whenever other work loads this
# small machine, and the baseline would measure the load, not Grid Engine.
queue_sed="s/^hostlist .*/hostlist $BENCH_HOST/
s/^slots .*/slots $slots/
s/^load_thresholds .*/load_thresholds NONE/
s/^pe_list .*/pe_list NONE/"
if qconf -sq all.q >/dev/null 2>&1; then
	qconf -sq all.q | sed -e "$queue_sed" >"$BENCH_STATE/conf/all.q"
	qconf -Mq "$BENCH_STATE/conf/all.q" >/dev/null
else
	edit_with "$queue_sed" -aq all.q >/dev/null
fi
qconf -sq all.q >"$BENCH_STATE/conf/all.q"

# Fast scheduler profile: a pass every second and one right after each submit
# and each job end (stock: every 15 s, so a trivial job waits ~15 s).
qconf -ssconf | sed -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
	-e 's/^flush_submit_sec .*/flush_submit_sec 1/' \
	-e 's/^flush_finish_sec .*/flush_finish_sec 1/' >"$BENCH_STATE/conf/sched"
qconf -Msconf "$BENCH_STATE/conf/sched" >/dev/null
echo "$slots" >"$BENCH_STATE/slots"

# --- 6. execd ------------------------------------------------------------------
if spooled_execd_pid >/dev/null; then
	if pid_is "$(cat "$BENCH_STATE/execd.pid" 2>/dev/null)" sge_execd; then
		say "sge_execd already running (pid $(cat "$BENCH_STATE/execd.pid"), started by up.sh)"
	else
		say "sge_execd already running, not started by up.sh: using it, down.sh will leave it alone"
	fi
else
	rm -f "$BENCH_STATE/execd.pid"
	say "starting sge_execd"
	/usr/sbin/sge_execd >>"$BENCH_STATE/log/execd.out" 2>&1 ||
		die "$EXIT_UNAVAILABLE" "sge_execd failed to start (see $SGE_SPOOL/execd/*/messages)"
	eventually 30 0.2 "sge_execd to write its pid file" spooled_execd_pid >/dev/null ||
		die "$EXIT_UNAVAILABLE" "sge_execd did not come up (see $SGE_SPOOL/execd/*/messages)"
	spooled_execd_pid >"$BENCH_STATE/execd.pid"
	say "sge_execd pid $(cat "$BENCH_STATE/execd.pid")"
fi

# --- 7. ready? -----------------------------------------------------------------
eventually 90 0.5 "qhost to show $BENCH_HOST with load values" host_reports ||
	die "$EXIT_UNAVAILABLE" "exec host $BENCH_HOST never reported its load"
eventually 60 0.5 "queue all.q@$BENCH_HOST to be usable with $slots slots" queue_usable "$slots" ||
	die "$EXIT_UNAVAILABLE" "queue all.q@$BENCH_HOST not usable: $("$SGE_BIN/qstat" -f 2>&1 | tail -n +3)"

"$SGE_BIN/qhost" -h "$BENCH_HOST" >&2
"$SGE_BIN/qstat" -f >&2
say "cell ready: all.q@$BENCH_HOST, $slots slots, fast scheduler, jobs as $BENCH_USER ($((SECONDS - started)) s)"
