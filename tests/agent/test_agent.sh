#!/bin/sh
# bbcached against real origins (nginx, faultsrv.py; 127.0.0.1): blocks
# fetched before they are staged come from the origin, byte-identical, once
# however many readers ask; status --json; malformed messages; SIGKILL and
# restart; 503 then OK and a vanished object; a full shm (DISK); --mode
# wait; another user can neither connect nor map the segment.
set -u
: "${BB_ORIGINS_DIR:=$(cd "$(dirname "$0")/../origins" && pwd)}"
. "$BB_ORIGINS_DIR/lib.sh"
trap 'stop_agents; bb_stop_all' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

here=$(cd "$(dirname "$0")" && pwd)
BBCACHE=${BBCACHE:-$here/../../agent/bbcache}
BBCACHED=${BBCACHED:-$here/../../agent/bbcached}
AGENT_CLIENT=${AGENT_CLIENT:-$here/agent_client}
for b in "$BBCACHE" "$BBCACHED" "$AGENT_CLIENT"; do
	[ -x "$b" ] || bb_die "$b not built (make check builds it)"
done
for c in nginx python3 curl setpriv; do bb_require "$c"; done

same_tree() { [ "$(bb_sha_tree "$1")" = "$(bb_sha_tree "$2")" ]; }
no_tmp() { [ -z "$(find "$1" -name '*.bbtmp' 2>/dev/null | head -n 1)" ]; }
# jget FILE EXPR: a field of the JSON object in FILE (python expression over j)
jget() { "$BB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(eval(sys.argv[2], {"j": j}))' "$1" "$2" 2>/dev/null || echo "?"; }

T=$(bb_tmpdir)
chmod 0711 "$T"
# In a sanitizer build the daemon's stderr is /dev/null once it serves:
# its reports go to files that the end of this test looks at.
mkdir -p "$T/asan"
chmod 0777 "$T/asan"
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T/asan/report"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$T/asan/report"
export ASAN_OPTIONS UBSAN_OPTIONS
JOBS=""
# A job id per run: tests may run in parallel with others on this machine.
JOB0=$(( ($$ % 100000) * 10 + 100000000 ))
stop_agents() {
	for j in $JOBS; do
		d="$T/job$j"
		if [ -S "$d/.bbcache/agent.sock" ]; then "$BBCACHE" stop --job-dir "$d" >/dev/null 2>&1; fi
		p=$(cat "$T/pid$j" 2>/dev/null)
		[ -n "$p" ] && kill -9 "$p" 2>/dev/null
		rm -f "/dev/shm/bbcache.$j"
	done
}
status() { # JOBDIR -> $T/st.json
	"$BBCACHE" status --json --job-dir "$1" >"$T/st.json" 2>"$T/st.err" || cat "$T/st.err" >"$T/st.json"
}
wait_state() { # JOBDIR: until staging ends (60 s)
	i=0
	while [ $i -lt 600 ]; do
		status "$1"
		s=$(jget "$T/st.json" 'j["state"]')
		[ "$s" != staging ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

bb_make_dataset "$T/src/set" 60 0-3M
bb_make_dataset "$T/src/set/big" 2 7M 5
bb_start_nginx "$T/src" >/dev/null
NGINX_URL=$HTTP_URL
# The prefetch reads whole objects through this proxy at 3 MB/s each, so
# that readers ask for blocks before they are staged; ranged GETs (the
# agent's on-demand fetches) pass at full speed.
bb_start_faultsrv --upstream "$NGINX_URL" >/dev/null
SLOW_URL=$FAULT_URL
bb_fault '{"match": "*", "mode": "slow", "rate": 3000000, "range": false, "count": -1}' "$SLOW_URL"

echo "# stage-in --async starts bbcached and returns once it serves"
J=$JOB0
JOBS="$JOBS $J"
D="$T/job$J"
mkdir -p "$D"
rc=0
"$BBCACHE" stage-in --async --job "$J" --jobs 2 --no-progress "$SLOW_URL/set/" "$D/set" >"$T/out.log" 2>&1 || rc=$?
eq "stage-in --async exits 0" "$rc" 0
check "the socket is there at once" test -S "$D/.bbcache/agent.sock"
check "the namespace file is there at once" test -f "$D/.bbcache/agent.ns"
check "the shm segment is there" test -e "/dev/shm/bbcache.$J"
eq ".bbcache is 0700" "$(stat -c %a "$D/.bbcache")" 700
eq "the socket is 0600" "$(stat -c %a "$D/.bbcache/agent.sock")" 600
contains "the ns file names the dataset" "$D/.bbcache/agent.ns" "dataset	$D/set	$D/.bbcache/set.manifest"
check "directories exist before their files" test -d "$D/set/d03/d02"
status "$D"
jget "$T/st.json" 'j["pid"]' >"$T/pid$J"
eq "status: staging at first" "$(jget "$T/st.json" 'j["state"]')" staging
# The prefetch (and the stage-in threads it starts) run under SCHED_IDLE,
# the threads that serve readers under the normal policy.
pol=$(ps -L -o cls= -p "$(cat "$T/pid$J")" | sort | uniq -c | tr -s ' \n' ' ')
check "while staging, the prefetch runs under SCHED_IDLE, the rest not (ps -L: $pol)" \
	sh -c "case '$pol' in *IDL*TS* | *TS*IDL*) exit 0 ;; esac; exit 1"

echo "# readers fetch blocks not yet staged: from the origin, once each, byte-identical"
n_blocks=$("$BB_PYTHON" - "$T/src/set" <<-'EOF'
	import os, sys
	n = 0
	for r, _, fs in os.walk(sys.argv[1]):
	    for f in fs:
	        n += (os.path.getsize(os.path.join(r, f)) + (4 << 20) - 1) // (4 << 20)
	print(n)
	EOF
)
rc=0
"$AGENT_CLIENT" fetch-all "$D/.bbcache/agent.sock" "$J" /dev/shm "$D/.bbcache/set.manifest" 0 \
	"$T/src/set" 6 >"$T/fa.log" 2>&1 || rc=$?
eq "fetch-all by 6 readers: every byte equals the origin's" "$rc" 0
tail -n 5 "$T/fa.log"
origin=$(sed -n 's/.* origin \([0-9]*\) .*/\1/p' "$T/fa.log" | tail -n 1)
check "some blocks came from the origin ($origin)" test "${origin:-0}" -gt 0
check "each block at most once from the origin ($origin <= $n_blocks)" test "${origin:-0}" -le "$n_blocks"
ranged=$(bb_fault_stat 's["ranged"]' "$SLOW_URL")
eq "one ranged GET per origin fill (single flight)" "$ranged" "$origin"
"$AGENT_CLIENT" fetch "$D/.bbcache/agent.sock" $((1 << 32)) 0 >"$T/out.log" 2>&1
contains "a bad file id: BB_ENOENT" "$T/out.log" "rc BB_ENOENT"
"$AGENT_CLIENT" fetch "$D/.bbcache/agent.sock" 5 999 >"$T/out.log" 2>&1
contains "a block past the end: BB_ENOENT" "$T/out.log" "rc BB_ENOENT"

echo "# status --json"
status "$D"
for k in files_staged files_total bytes_staged bytes_total progress_pct throughput_bps \
	shm_hits evictions misses_served errors first_error mode state; do
	check "status has $k" grep -q "\"$k\":" "$T/st.json"
done
eq "status: files_total" "$(jget "$T/st.json" 'j["files_total"]')" 62
eq "status: mode" "$(jget "$T/st.json" 'j["mode"]')" async
eq "status: origin fills counted" "$(jget "$T/st.json" 'j["fetch"]["origin"]')" "$origin"
"$BBCACHE" status --job-dir "$D" >"$T/out.log" 2>&1
contains "status (text) shows progress" "$T/out.log" "staged"
BB_JOB_DIR=$D "$BBCACHE" status >"$T/out.log" 2>&1
contains "status finds the agent through \$BB_JOB_DIR" "$T/out.log" "job $J"

echo "# malformed messages get BB_EPROTO, the agent keeps serving"
rc=0
"$AGENT_CLIENT" malformed "$D/.bbcache/agent.sock" >"$T/out.log" 2>&1 || rc=$?
sed 's/^/    /' "$T/out.log"
eq "every malformed message answered, agent alive" "$rc" 0
contains "the agent logged them" "$D/.bbcache/agent.log" "malformed request"

echo "# SIGKILL mid-staging; a new agent reattaches and finishes"
pid=$(cat "$T/pid$J")
kill -9 "$pid"
# Until the kernel has torn the process down, its socket still accepts (on
# a loaded machine that took longer than 0.2 s, and status then reported
# the connection dropped rather than no agent).
# A zombie leader counts as gone only once its other threads have exited
# too (one in the middle of a write can take a while): until then the
# socket stays open, and a connection is dropped unanswered.
running() {
	case $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) in
	"") return 1 ;;
	Z) [ "$(ls "/proc/$1/task" 2>/dev/null | wc -l)" -gt 1 ] ;;
	*) return 0 ;;
	esac
}
i=0
while running "$pid" && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
check "the killed agent is gone" eval '! running "$pid"'
check "the segment survives the kill" test -e "/dev/shm/bbcache.$J"
rc=0
"$BBCACHE" status --job-dir "$D" >"$T/out.log" 2>&1 || rc=$?
eq "status of a dead agent exits 1" "$rc" 1
contains "... and says so" "$T/out.log" "no agent serves"
bb_fault_reset "$SLOW_URL"
rc=0
"$BBCACHED" --job "$J" --job-dir "$D" --manifest "$D/.bbcache/set.manifest" >"$T/out.log" 2>&1 || rc=$?
eq "the restarted agent starts" "$rc" 0
contains "it attached the old segment" "$D/.bbcache/agent.log" "attached the existing shm segment"
rc=0
"$BBCACHED" --job "$J" --job-dir "$D" --manifest "$D/.bbcache/set.manifest" >"$T/out.log" 2>&1 || rc=$?
eq "a second agent for the same dir exits 1" "$rc" 1
contains "... saying why" "$T/out.log" "an agent already serves job dir"
status "$D"
jget "$T/st.json" 'j["pid"]' >"$T/pid$J"
rc=0
"$AGENT_CLIENT" fetch-all "$D/.bbcache/agent.sock" "$J" /dev/shm "$D/.bbcache/set.manifest" 0 \
	"$T/src/set" 2 >"$T/fa.log" 2>&1 || rc=$?
eq "after the restart, every block byte-identical" "$rc" 0
tail -n 5 "$T/fa.log"
check "staging completes" wait_state "$D"
eq "state complete" "$(jget "$T/st.json" 'j["state"]')" complete
check "every file complete and byte-identical" same_tree "$T/src/set" "$D/set"
check "no temporary files left" no_tmp "$D/set"
rc=0
"$BBCACHE" stop --job-dir "$D" >"$T/out.log" 2>&1 || rc=$?
eq "bbcache stop exits 0" "$rc" 0
check "the socket is gone" test ! -e "$D/.bbcache/agent.sock"
check "the ns file is gone" test ! -e "$D/.bbcache/agent.ns"
check "nothing left in /dev/shm" test ! -e "/dev/shm/bbcache.$J"
check "the staged data stays" same_tree "$T/src/set" "$D/set"
rc=0
"$BBCACHE" stop --job-dir "$D" >"$T/out.log" 2>&1 || rc=$?
eq "stop without an agent exits 1" "$rc" 1

echo "# the origin: 503 twice, then OK; an object gone since the listing"
mkdir -p "$T/fsrc"
bb_make_dataset "$T/fsrc/f" 8 100K-600K 9
bb_start_faultsrv --serve "$T/fsrc" >/dev/null
F_URL=$FAULT_URL
first=$(cd "$T/fsrc/f" && find . -type f | LC_ALL=C sort | head -n 1 | sed 's|^\./||')
gone=$(cd "$T/fsrc/f" && find . -type f | LC_ALL=C sort | tail -n 1 | sed 's|^\./||')
J=$((JOB0 + 1))
JOBS="$JOBS $J"
D="$T/job$J"
mkdir -p "$D"
# A plain stage-in writes the manifest (the job's snapshot); then the data
# goes, one object vanishes from the origin, and another answers 503 twice.
rc=0
"$BBCACHE" stage-in --no-progress "$F_URL/f/" "$D/f" >"$T/out.log" 2>&1 || rc=$?
eq "a plain stage-in of the origin works (and writes the manifest)" "$rc" 0
rm -rf "$D/f"
rm -f "$T/fsrc/f/$gone"
bb_fault_reset "$F_URL"
bb_fault "{\"match\": \"/f/$first\", \"mode\": \"503\", \"count\": 2}" "$F_URL"
rc=0
"$BBCACHED" --job "$J" --job-dir "$D" --manifest "$D/.bbcache/f.manifest" >"$T/out.log" 2>&1 || rc=$?
eq "bbcached over it starts" "$rc" 0
status "$D"
jget "$T/st.json" 'j["pid"]' >"$T/pid$J"
check "staging ends (no hang)" wait_state "$D"
eq "state failed" "$(jget "$T/st.json" 'j["state"]')" failed
eq "one file failed" "$(jget "$T/st.json" 'j["files_failed"]')" 1
first_error=$(jget "$T/st.json" 'j["first_error"]')
case "$first_error" in
*"$gone"*) ok "the first error names the vanished file" ;;
*) bad "the first error names the vanished file (got '$first_error')" ;;
esac
case "$first_error" in
*"$F_URL"*) ok "... and the origin" ;;
*) bad "... and the origin (got '$first_error')" ;;
esac
check "the file that got 503 twice is complete" cmp -s "$T/fsrc/f/$first" "$D/f/$first"
eq "the origin sent the two 503s" "$(bb_fault_stat 's["faults"]["503"]' "$F_URL")" 2
idx=$("$BB_PYTHON" - "$D/f" "$gone" <<-'EOF'
	import os, sys
	# entry index = position in bytewise-sorted paths, the root first, directories included
	root, gone = sys.argv[1], sys.argv[2]
	parts = gone.split("/")
	paths = {""}
	for p in [os.path.relpath(os.path.join(r, f), root) for r, _, fs in os.walk(root) for f in fs] + [gone]:
	    q = p.split("/")
	    for k in range(1, len(q) + 1):
	        paths.add("/".join(q[:k]))
	print(sorted(p.encode() for p in paths).index(gone.encode()))
	EOF
)
rc=0
timeout 60 "$AGENT_CLIENT" fetch "$D/.bbcache/agent.sock" "$idx" 0 >"$T/out.log" 2>&1 || rc=$?
eq "FETCH of the vanished file returns (no hang)" "$rc" 0
contains "... with BB_ESTALE" "$T/out.log" "rc BB_ESTALE"
timeout 60 "$AGENT_CLIENT" file "$D/.bbcache/agent.sock" "$idx" >"$T/out.log" 2>&1
contains "FILE of it: BB_ESTALE" "$T/out.log" "rc BB_ESTALE"
contains "the log names the file" "$D/.bbcache/agent.log" "$gone"
"$BBCACHE" stop --job-dir "$D" >/dev/null 2>&1
check "stopped: nothing left in /dev/shm" test ! -e "/dev/shm/bbcache.$J"

echo "# a full shm: blocks are answered DISK once the NVMe file is whole"
J=$((JOB0 + 2))
JOBS="$JOBS $J"
D="$T/job$J"
mkdir -p "$D"
bb_fault '{"match": "*", "mode": "slow", "rate": 3000000, "range": false, "count": -1}' "$SLOW_URL"
"$BBCACHE" stage-in --async --job "$J" --shm 1M --no-progress "$SLOW_URL/set/" "$D/set" >"$T/out.log" 2>&1
status "$D"
jget "$T/st.json" 'j["pid"]' >"$T/pid$J"
rc=0
"$AGENT_CLIENT" fetch-all "$D/.bbcache/agent.sock" "$J" /dev/shm "$D/.bbcache/set.manifest" 0 \
	"$T/src/set" 2 >"$T/fa.log" 2>&1 || rc=$?
eq "fetch-all with a 1 MiB shm: every byte right" "$rc" 0
tail -n 5 "$T/fa.log"
disk=$(sed -n 's/.* disk \([0-9]*\) .*/\1/p' "$T/fa.log" | tail -n 1)
check "blocks that do not fit were answered DISK ($disk)" test "${disk:-0}" -gt 0
"$BBCACHE" stop --job-dir "$D" >/dev/null 2>&1
check "stopped: nothing left in /dev/shm" test ! -e "/dev/shm/bbcache.$J"
bb_fault_reset "$SLOW_URL"

echo "# --mode wait returns when everything is staged"
J=$((JOB0 + 3))
JOBS="$JOBS $J"
D="$T/job$J"
mkdir -p "$D"
"$BBCACHE" stage-in --no-progress --job "$J" "$NGINX_URL/set/" "$D/set" >/dev/null 2>&1
rm -rf "$D/set"
rc=0
"$BBCACHED" --job "$J" --job-dir "$D" --manifest "$D/.bbcache/set.manifest" --mode wait >"$T/out.log" 2>&1 || rc=$?
eq "bbcached --mode wait exits 0" "$rc" 0
check "all there when it returns" same_tree "$T/src/set" "$D/set"
status "$D"
jget "$T/st.json" 'j["pid"]' >"$T/pid$J"
eq "state complete at once" "$(jget "$T/st.json" 'j["state"]')" complete

echo "# S3 (s3rver behind faultsrv --sigv4-check): signed ranged GETs on demand"
bb_require node
bb_require s3rver
bb_require aws
bb_require botocore
bb_make_dataset "$T/s3src" 12 0-2M 21
bb_start_s3rver "$T/s3" >/dev/null
bb_s3 s3 mb s3://bkt >/dev/null
bb_s3 s3 cp --quiet --recursive "$T/s3src" s3://bkt/data/
bb_start_faultsrv --upstream "$S3_ENDPOINT" --sigv4-check >/dev/null
S3F_URL=$FAULT_URL
bb_fault '{"match": "*", "mode": "slow", "rate": 1000000, "range": false, "method": "GET", "count": -1}' "$S3F_URL"
J=$((JOB0 + 4))
JOBS="$JOBS $J"
D="$T/job$J"
mkdir -p "$D"
rc=0
AWS_ENDPOINT_URL=$S3F_URL "$BBCACHE" stage-in --async --job "$J" --jobs 2 --no-progress \
	s3://bkt/data/ "$D/data" >"$T/out.log" 2>&1 || rc=$?
eq "stage-in --async from S3 exits 0" "$rc" 0
status "$D"
jget "$T/st.json" 'j["pid"]' >"$T/pid$J"
rc=0
"$AGENT_CLIENT" fetch-all "$D/.bbcache/agent.sock" "$J" /dev/shm "$D/.bbcache/data.manifest" 0 \
	"$T/s3src" 3 >"$T/fa.log" 2>&1 || rc=$?
eq "S3: every block byte-identical" "$rc" 0
tail -n 3 "$T/fa.log"
origin=$(sed -n 's/.* origin \([0-9]*\) .*/\1/p' "$T/fa.log" | tail -n 1)
check "S3: some blocks fetched on demand ($origin)" test "${origin:-0}" -gt 0
check "S3: staging completes" wait_state "$D"
check "S3: every file complete and equal" same_tree "$T/s3src" "$D/data"
eq "S3: no request with a bad signature" "$(bb_fault_stat 's["sigv4"]["bad"]' "$S3F_URL")" 0
check "S3: signed requests seen" test "$(bb_fault_stat 's["sigv4"]["good"]' "$S3F_URL")" -gt 0
if grep -q S3RVER "$D/.bbcache/agent.log"; then bad "the log holds a credential"; else ok "no credential in the log"; fi
"$BBCACHE" stop --job-dir "$D" >/dev/null 2>&1
check "stopped: nothing left in /dev/shm" test ! -e "/dev/shm/bbcache.$J"

echo "# stage-in --async --no-sign-request: bbcached sends no credential either"
# A second faultsrv without the SigV4 check counts the requests that carry
# any credential; the keys stay in the environment and must not be sent.
bb_start_faultsrv --upstream "$S3_ENDPOINT" >/dev/null
ANON_URL=$FAULT_URL
J=$((JOB0 + 7))
JOBS="$JOBS $J"
D="$T/job$J"
mkdir -p "$D"
rc=0
AWS_ENDPOINT_URL=$ANON_URL "$BBCACHE" stage-in --async --no-sign-request --job "$J" --jobs 2 \
	--no-progress s3://bkt/data/ "$D/data" >"$T/out.log" 2>&1 || rc=$?
eq "stage-in --async --no-sign-request exits 0" "$rc" 0
check "... staging completes" wait_state "$D"
eq "... no error" "$(jget "$T/st.json" 'j["errors"]')" 0
check "... every file complete and equal" same_tree "$T/s3src" "$D/data"
check "... the listing and the objects went through the proxy" \
	test "$(bb_fault_stat 's["total"]' "$ANON_URL")" -ge 13
eq "... no request carried a credential" "$(bb_fault_stat 's["credentials"]' "$ANON_URL")" 0
"$BBCACHE" stop --job-dir "$D" >/dev/null 2>&1
check "... stopped: nothing left in /dev/shm" test ! -e "/dev/shm/bbcache.$J"

echo "# time to first byte: a running client's next miss does not wait for its last block; background work holds still"
PRELOAD=${BB_PRELOAD:-$(dirname "$BBCACHE")/../mpi-io/.libs/libbbcache_preload.so}
[ -f "$PRELOAD" ] || bb_die "$PRELOAD not built"
# In the sanitizer build the .so needs the ASan runtime loaded before it
# (as in tests/preload/common.sh).
if readelf -d "$PRELOAD" 2>/dev/null | grep -q 'NEEDED.*libasan'; then
	_asan=$(ldd "$PRELOAD" | awk '/libasan/ { print $3 }')
	[ -f "$_asan" ] || bb_die "sanitizer build: cannot find the libasan that $PRELOAD needs"
	PRELOAD="$_asan $PRELOAD"
fi
# The preloaded Python's own leaks are not ours, and no log_path for it:
# ASan's mkdir of it at start-up would go through the interposer before
# the shadow memory exists (tests/preload/common.sh).
PRE_SAN="env ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1"
bb_make_dataset "$T/src/tt" 3 7M 31
J=$((JOB0 + 5))
JOBS="$JOBS $J"
D="$T/job$J"
mkdir -p "$D"
# The prefetch at 1 MB/s (whole objects), the on-demand block GETs at
# 500 kB/s: a 4 MiB block takes 8 s to arrive, its first bytes come at once.
bb_fault_reset "$SLOW_URL"
bb_fault '[{"match": "*", "mode": "slow", "rate": 1000000, "range": false, "count": -1},
	{"match": "*", "mode": "slow", "rate": 500000, "range": true, "count": 2}]' "$SLOW_URL"
"$BBCACHE" stage-in --async --job "$J" --jobs 2 --no-progress "$SLOW_URL/tt/" "$D/tt" >"$T/out.log" 2>&1
status "$D"
jget "$T/st.json" 'j["pid"]' >"$T/pid$J"
set -- $(cd "$T/src/tt" && find . -type f | LC_ALL=C sort | sed 's|^\./||')
cat >"$T/ttfb.py" <<-'EOF'
	import os, sys, time
	def first(path):
	    t = time.monotonic()
	    fd = os.open(path, os.O_RDONLY)
	    b = os.read(fd, 4096)
	    os.close(fd)
	    return time.monotonic() - t, b
	d, src = sys.argv[1], sys.argv[2]
	out = []
	for name in sys.argv[3:]:
	    t, b = first(os.path.join(d, name))
	    ok = b == open(os.path.join(src, name), "rb").read(4096)
	    out.append("%.3f %s" % (t, "same" if ok else "DIFFERENT"))
	print(" ".join(out))
	EOF
rc=0
$PRE_SAN BBCACHE_JOB_DIR=$D LD_PRELOAD="$PRELOAD" timeout 60 "$BB_PYTHON" "$T/ttfb.py" "$D/tt" "$T/src/tt" "$3" "$2" \
	>"$T/tt.out" 2>&1 || rc=$?
eq "two first reads through the interposer" "$rc" 0
read -r t1 s1 t2 s2 <"$T/tt.out" || true
eq "... the first 4 KiB of one file equal the origin's" "${s1:-}" same
eq "... and of the next one" "${s2:-}" same
check "... the first comes before its block (${t1:-?} s < 3 s of 8)" \
	awk -v t="${t1:-99}" 'BEGIN { exit !(t < 3) }'
check "... the second does not wait for the first's block (${t2:-?} s < 3 s)" \
	awk -v t="${t2:-99}" 'BEGIN { exit !(t < 3) }'
heads=$(bb_fault_stat 's["by_path"]["/tt/"]["HEAD"]' "$SLOW_URL")
check "the agent opened a connection to the origin at start (HEAD /tt/: $heads)" test "${heads:-0}" -ge 1
# A miss whose first bytes take a second: the prefetch holds still meanwhile.
bb_fault '{"match": "*", "mode": "stall", "bytes": 0, "seconds": 1, "then": "continue", "range": true, "count": 1}' "$SLOW_URL"
rc=0
$PRE_SAN BBCACHE_JOB_DIR=$D LD_PRELOAD="$PRELOAD" timeout 60 "$BB_PYTHON" "$T/ttfb.py" "$D/tt" "$T/src/tt" "$1" \
	>"$T/tt.out" 2>&1 || rc=$?
eq "a read whose origin answers after 1 s" "$rc" 0
contains "... gets the origin's bytes" "$T/tt.out" same
status "$D"
held=$(jget "$T/st.json" 'j["fetch"]["held"]')
check "background work held still while readers waited (fetch.held $held)" test "${held:-0}" -gt 0 2>/dev/null
eq "three early replies" "$(jget "$T/st.json" 'j["fetch"]["early_replies"]')" 3
"$BBCACHE" stop --job-dir "$D" >/dev/null 2>&1
check "stopped: nothing left in /dev/shm" test ! -e "/dev/shm/bbcache.$J"
bb_fault_reset "$SLOW_URL"

echo "# another user can neither connect nor map the segment"
J=$((JOB0 + 3)) # the --mode wait agent serves on
D="$T/job$J"
if ! id bbtest >/dev/null 2>&1; then
	useradd -r -M -s /usr/sbin/nologin bbtest || bb_die "cannot create the test user bbtest"
fi
mkdir -p "$T/bin"
cp "$AGENT_CLIENT" "$T/bin/agent_client"
chmod 0755 "$T/bin" "$T/bin/agent_client"
chmod 0711 "$D"
as_bbtest() { setpriv --reuid bbtest --regid bbtest --clear-groups "$@"; }
rc=0
as_bbtest "$T/bin/agent_client" hello "$D/.bbcache/agent.sock" >"$T/out.log" 2>&1 || rc=$?
eq "bbtest: connect fails" "$rc" 3
contains "... with EACCES from the 0700 directory" "$T/out.log" "connect BB_EPERM"
rc=0
as_bbtest "$T/bin/agent_client" attach "$J" /dev/shm >"$T/out.log" 2>&1 || rc=$?
eq "bbtest: cannot map the segment" "$rc" 3
contains "... permission denied" "$T/out.log" "attach BB_EPERM"
# Past the file modes (an admin's mistake), SO_PEERCRED still refuses it.
chmod 0711 "$D/.bbcache"
chmod 0666 "$D/.bbcache/agent.sock"
as_bbtest "$T/bin/agent_client" hello "$D/.bbcache/agent.sock" >"$T/out.log" 2>&1
contains "bbtest past the modes: the agent closes the connection" "$T/out.log" "call BB_EDEAD"
contains "... and logs the uid" "$D/.bbcache/agent.log" "refused a connection from uid $(id -u bbtest)"
chmod 0700 "$D/.bbcache"
chmod 0600 "$D/.bbcache/agent.sock"
"$AGENT_CLIENT" hello "$D/.bbcache/agent.sock" >"$T/out.log" 2>&1
contains "the job's user still gets in" "$T/out.log" "rc BB_OK version 1 job $J"
"$BBCACHE" stop --job-dir "$D" >/dev/null 2>&1
check "stopped: nothing left in /dev/shm" test ! -e "/dev/shm/bbcache.$J"

stop_agents
JOBS=""
if [ -n "$(ls "$T/asan" 2>/dev/null)" ]; then
	bad "sanitizer reports:"
	cat "$T/asan"/* | head -n 60
else
	ok "no sanitizer report from bbcached, bbcache or agent_client"
fi

bb_checks_done
