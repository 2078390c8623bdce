#!/bin/sh
# The whole test suite, as CI runs it (.ci/run) and as the README's second
# command runs it: a -Werror build and `make check`, the same unit tests
# under ASan+UBSan, the libFuzzer targets for a bounded time, `make
# distcheck`, the Slurm integration tests (tests/slurm/, as root), and a
# check that nothing was left in /dev/shm.
#
#   tests/run-all.sh            # BBCACHE_FUZZ_SECONDS (default 60) per target
#
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${BBCACHE_FUZZ_SECONDS:-45}
failed=""

step() { printf '\n=== %s ===\n' "$*"; }
show_logs() {
	# On failure, print each failing test's log so CI output says why.
	find "$1" -name '*.log' ! -name config.log ! -name test-suite.log | while read -r l; do
		if grep -qE '^:test-result: (FAIL|ERROR)' "${l%.log}.trs" 2>/dev/null; then
			echo "----- $l"; tail -n 60 "$l"
		fi
	done
}
check_build() { # name, configure args...
	name=$1; shift
	dir="$top/_build/$name"
	step "$name: configure $*"
	rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
	"$top/configure" --enable-werror "$@" >configure.out 2>&1 || { cat configure.out; cd "$top"; return 1; }
	tail -n 18 configure.out
	step "$name: make"
	make -j"$jobs" >make.out 2>&1 || { cat make.out; cd "$top"; return 1; }
	step "$name: make check"
	if ! make -j"$jobs" check; then show_logs "$dir"; cd "$top"; return 1; fi
	cd "$top"
}

leftovers_before=$(ls /dev/shm | grep -c '^bbcache\.' || true)

step "autogen"
if [ -f Makefile ] || [ -f config.status ]; then
	echo "run-all: the source tree is configured in place; run 'make distclean' first" >&2
	exit 1
fi
./autogen.sh >_autogen.out 2>&1 || { cat _autogen.out; exit 1; }
rm -f _autogen.out

check_build ci || failed="$failed make-check"
# The sanitizer build and distcheck repeat the origin tests with a smaller
# "multi-GiB" file: the full-size one ran in the first build.
BBCACHE_BIG_FILE=256M check_build asan --enable-sanitizers || failed="$failed asan-check"

step "fuzz (${fuzz_seconds} s per target)"
BUILD_DIR="$top/_build/ci" sh tests/fuzz/run-fuzz.sh "$fuzz_seconds" || failed="$failed fuzz"

step "make distcheck"
(cd "$top/_build/ci" && BBCACHE_BIG_FILE=256M make -j"$jobs" distcheck >distcheck.out 2>&1 && tail -n 4 distcheck.out) ||
	{ tail -n 80 "$top/_build/ci/distcheck.out"; failed="$failed distcheck"; }

# The Slurm integration (tests/slurm/): a private one-node Slurm on 127.0.0.1
# with the ci build's bbcache, burst_buffer.lua and SPANK plugin; #BB jobs
# staging from s3rver and nginx. Root only (munged, slurmctld, slurmd, test
# users); about a minute.
for t in test_slurm_bb.sh test_slurm_job.sh; do
	step "slurm: tests/slurm/$t"
	if [ "$(id -u)" -ne 0 ]; then
		echo "run-all: tests/slurm/$t needs root (it starts munged, slurmctld and slurmd)" >&2
		failed="$failed slurm:$t"
		continue
	fi
	mkdir -p "$top/_build/ci"
	if timeout 600 bash "$top/tests/slurm/$t" "$top/_build/ci" >"$top/_build/ci/$t.log" 2>&1; then
		grep -E '^(not ok|# .* s$|1\.\.)' "$top/_build/ci/$t.log" || true
		tail -n 1 "$top/_build/ci/$t.log"
	else
		cat "$top/_build/ci/$t.log"
		failed="$failed slurm:$t"
	fi
done

step "nothing left in /dev/shm"
left=$(ls /dev/shm | grep -c '^bbcache\.' || true)
if [ "$left" -gt "$leftovers_before" ]; then
	ls -l /dev/shm | grep 'bbcache\.'
	failed="$failed leftovers"
else
	echo "ok"
fi

if [ -n "$failed" ]; then
	printf '\nrun-all: FAILED:%s\n' "$failed"
	exit 1
fi
printf '\nrun-all: all tests passed\n'
