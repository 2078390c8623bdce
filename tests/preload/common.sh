# Shared by the interposer tests (tests/preload/*.sh): the origin servers of
# tests/origins/lib.sh, the built programs, numbered checks, the real agent,
# and the cleanup.  Sourced; POSIX sh.
#
#   BBCACHE, BBCACHED  the CLI and the agent (make check sets them)
#   BB_PRELOAD         libbbcache_preload.so (<builddir>/mpi-io/.libs/)
#   BB_ORIGINS_DIR     tests/origins (lib.sh, faultsrv.py)
#
# A tool that is missing fails the test (exit 1); nothing is skipped
# silently.  In a sanitizer build (the .so needs libasan) the ASan runtime
# is preloaded first, leak checks of the foreign programs are off, and
# sanitizer reports go to files that pl_finish checks.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${BB_ORIGINS_DIR:=$(cd "$here/../origins" 2>/dev/null && pwd)}"
export BB_ORIGINS_DIR
. "$BB_ORIGINS_DIR/lib.sh"
trap 'pl_cleanup' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PYCLIENT=$here/pyclient.py
# Built programs: from make check's environment, else a build tree next door.
for _v in BBCACHE:agent/bbcache BBCACHED:agent/bbcached BB_PRELOAD:mpi-io/.libs/libbbcache_preload.so; do
	_n=${_v%%:*}
	_p=${_v#*:}
	eval "_cur=\${$_n:-}"
	if [ -z "$_cur" ]; then
		for _b in "$here/../.." "$here/../../_build/ci" "${BUILD_DIR:-/nonexistent}"; do
			[ -e "$_b/$_p" ] && _cur=$(cd "$(dirname "$_b/$_p")" && pwd)/$(basename "$_p") && break
		done
	fi
	[ -n "$_cur" ] && [ -e "$_cur" ] || bb_die "$_n ($_p) not found: build first, or set $_n"
	eval "$_n=\$_cur"
done
export BBCACHE BBCACHED BB_PRELOAD

lacks() { # DESC FILE TEXT
	if grep -qF -- "$3" "$2"; then bad "$1 (found '$3':)"; grep -F -- "$3" "$2" | head -n 5 | sed 's/^/    /'; else ok "$1"; fi
}
# pyok FILE: count the "ok - " / "not ok - " lines a pyclient.py run printed
pyok() {
	while IFS= read -r _l; do
		case $_l in
		"ok - "*) ok "${_l#ok - }" ;;
		"not ok - "*) bad "${_l#not ok - }" ;;
		"#"*) echo "$_l" ;;
		esac
	done <"$1"
}
same_tree() { [ -d "$1" ] && [ -d "$2" ] && [ "$(bb_sha_tree "$1")" = "$(bb_sha_tree "$2")" ]; }
jget() { # FILE EXPR: a field of the JSON object in FILE
	"$BB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(eval(sys.argv[2], {"j": j}))' "$1" "$2" 2>/dev/null || echo "?"
}

T=$(bb_tmpdir)
chmod 0711 "$T"
export HOME="$T/home"
mkdir -p "$HOME"

# The sanitizer build: the .so needs the ASan runtime loaded before it.
PL_SAN=0
PL_LD_PRELOAD=$BB_PRELOAD
bb_require readelf
if readelf -d "$BB_PRELOAD" | grep -q 'NEEDED.*libasan'; then
	PL_SAN=1
	_asan=$(ldd "$BB_PRELOAD" | awk '/libasan/ { print $3 }')
	[ -f "$_asan" ] || bb_die "sanitizer build: cannot find the libasan that $BB_PRELOAD needs"
	PL_LD_PRELOAD="$_asan $BB_PRELOAD"
	mkdir -p "$T/asan"
	chmod 0777 "$T/asan"
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T/asan/report"
	UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$T/asan/report:print_stacktrace=1"
	export ASAN_OPTIONS UBSAN_OPTIONS
	echo "# sanitizer build: LD_PRELOAD=$PL_LD_PRELOAD"
fi

# pre [-u USER] CMD...: CMD through the interposer, for the job directory
# $D (as USER, with setpriv).  The foreign programs' own leaks are not ours:
# leak checks off.  No log_path for them: ASan creates its directory with
# mkdir() while it initializes, which the instrumented interposer cannot
# serve before ASan's shadow memory exists (a crash in any program); their
# sanitizer reports go to stderr and fail the check that runs them.
pre() {
	if [ "$1" = -u ]; then
		_u=$2
		shift 2
		set -- setpriv --reuid "$_u" --regid "$_u" --clear-groups env HOME=/nonexistent "$@"
	fi
	env LD_PRELOAD="$PL_LD_PRELOAD" BBCACHE_JOB_DIR="$D" \
		ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 "$@"
}

# Jobs: ids unique per run (tests may run in parallel), dirs $T/jobID.
PL_JOBS=""
pl_job_base() { echo $(( ($$ % 100000) * 10 + 400000000 + $1 * 1000000 )); }
pl_agent_pid() { # JOBDIR
	"$BBCACHE" status --json --job-dir "$1" >"$T/st.json" 2>/dev/null && jget "$T/st.json" 'j["pid"]'
}
pl_status() { # JOBDIR -> $T/st.json
	"$BBCACHE" status --json --job-dir "$1" >"$T/st.json" 2>"$T/st.err" || cat "$T/st.err" >"$T/st.json"
}
pl_wait_state() { # JOBDIR SECONDS: until staging ends; the state in $pl_state
	_i=0
	while [ "$_i" -lt $(($2 * 10)) ]; do
		pl_status "$1"
		pl_state=$(jget "$T/st.json" 'j["state"]')
		[ "$pl_state" != staging ] && return 0
		sleep 0.1
		_i=$((_i + 1))
	done
	return 1
}
pl_stop_agents() {
	for _j in $PL_JOBS; do
		_d=$(cat "$T/dir.$_j" 2>/dev/null) || continue
		if [ -S "$_d/.bbcache/agent.sock" ]; then
			timeout 20 "$BBCACHE" stop --job-dir "$_d" >/dev/null 2>&1
		fi
		for _p in $(cat "$T/pids.$_j" 2>/dev/null); do
			kill -9 "$_p" 2>/dev/null
		done
		rm -f "/dev/shm/bbcache.$_j"
	done
	PL_JOBS=""
}
pl_track_job() { # JOB JOBDIR
	PL_JOBS="$PL_JOBS $1"
	echo "$2" >"$T/dir.$1"
}
pl_track_agent() { # JOB JOBDIR: remember the agent's pid for the cleanup
	_p=$(pl_agent_pid "$2")
	[ -n "$_p" ] && [ "$_p" != "?" ] && echo "$_p" >>"$T/pids.$1"
	echo "$_p"
}
pl_cleanup() {
	pl_stop_agents
	bb_stop_all
}

# pl_finish: sanitizer reports are failures; the summary; the exit code.
pl_finish() {
	if [ "$PL_SAN" = 1 ]; then
		if [ -n "$(ls "$T/asan" 2>/dev/null)" ]; then
			bad "sanitizer reports:"
			cat "$T/asan"/* | head -n 80
		else
			ok "no sanitizer report"
		fi
	fi
	echo "1..$((passed + failed))"
	bb_checks_done
}
