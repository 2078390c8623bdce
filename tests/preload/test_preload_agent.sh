#!/bin/sh
# The interposer with the real agent (bbcached), under trouble:
#  - a read while staging is half done (mode async, a slow origin): a late
#    file's blocks jump the prefetch queue, the bytes are right;
#  - the agent SIGKILLed mid-epoch, then restarted: readers get the right
#    bytes (or a clear EIO once the agent stays away), never wrong bytes,
#    never a hang;
#  - readers SIGKILLed while reading: everything stays readable, and
#    `bbcache stop` leaves nothing in /dev/shm;
#  - /dev/shm full (a 1 MiB shm limit): reads are right, from the NVMe copy;
#  - a really full shm file system (a 4 MiB tmpfs, filled): the agent runs
#    without a cache and every read comes from the NVMe copy;
#  - another user can neither read the staged files through the interposer,
#    nor connect to the agent's socket, nor open the shm segment (the job
#    runs as the user bbtest, the intruder is bbtest2).
# Every wait is bounded with timeout(1).  nginx and faultsrv.py on 127.0.0.1.
. "$(dirname "$0")/common.sh"
for c in nginx python3 curl timeout setpriv useradd; do bb_require "$c"; done

S=$T/src/set
bb_make_dataset "$S" 30 100K-1M 21
mkdir -p "$S/big"
"$BB_PYTHON" -c 'import random, sys
open(sys.argv[1], "wb").write(random.Random(22).randbytes(9 * 1048576 + 777))' "$S/big/huge.bin"
(cd "$S" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) >"$T/files"
# The manifest's order is bytewise by path: the last file is staged last.
last=$(tail -n 1 "$T/files")
bb_start_nginx "$T/src" >/dev/null
NGINX_URL=$HTTP_URL
# The prefetch GETs whole objects through this proxy at 2 MB/s each; ranged
# GETs (the agent's on-demand fetches for readers) go at full speed.
bb_start_faultsrv --upstream "$NGINX_URL" >/dev/null
SLOW_URL=$FAULT_URL
slow() { bb_fault "{\"match\": \"*\", \"mode\": \"slow\", \"rate\": ${1:-2000000}, \"range\": false, \"count\": -1}" "$SLOW_URL"; }
JB=$(pl_job_base 2)
export BBCACHE_AGENT_TIMEOUT=20
# prefix OUT ORIGIN: OUT is a (possibly empty) prefix of ORIGIN's bytes
prefix() { head -c "$(wc -c <"$1")" "$2" | cmp -s - "$1"; }
elapsed() { echo $(($(date +%s%N) / 1000000 - $1)); }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

echo "# a read while staging is half done: a late file jumps the queue"
J=$JB
D=$T/job$J
mkdir -p "$D"
pl_track_job "$J" "$D"
slow 2000000
rc=0
"$BBCACHE" stage-in --async --job "$J" --jobs 2 --no-progress "$SLOW_URL/set/" "$D/set" >"$T/out.log" 2>&1 || rc=$?
eq "stage-in --async through a slow origin exits 0" "$rc" 0
[ "$rc" -eq 0 ] || { cat "$T/out.log"; bb_die "no agent: nothing else can run"; }
pl_track_agent "$J" "$D" >/dev/null
t=$(now_ms)
rc=0
pre timeout 30 cat "$D/set/$last" >"$T/late.out" 2>"$T/late.err" || rc=$?
ms=$(elapsed "$t")
eq "cat of the last file in staging order exits 0 (in $ms ms)" "$rc" 0
check "... every byte equal" cmp -s "$S/$last" "$T/late.out"
pl_status "$D"
eq "... and staging is still going on after it (the read did not wait for it)" "$(jget "$T/st.json" 'j["state"]')" staging
n=$(jget "$T/st.json" 'j["fetch"]["origin"]')
check "the agent served the miss from the origin, ahead of the prefetch (fetch.origin $n)" test "${n:-0}" -ge 1 2>/dev/null
sz=$(wc -c <"$S/big/huge.bin" | tr -d ' ')
rc=0
pre timeout 30 "$BB_PYTHON" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
sys.stdout.buffer.write(os.pread(fd, 1000, int(sys.argv[2]) - 1000))' "$D/set/big/huge.bin" "$sz" >"$T/tail.out" 2>"$T/tail.err" || rc=$?
eq "the last 1000 bytes of a 9 MiB file being staged (pread of its third block) exit 0" "$rc" 0
check "... and are right" sh -c 'tail -c 1000 "$1" | cmp -s - "$2"' sh "$S/big/huge.bin" "$T/tail.out"
t=$(now_ms)
rc=0
pre timeout 60 "$BB_PYTHON" "$PYCLIENT" epoch "$D/set" "$S" 0 >"$T/ep.log" 2>&1 || rc=$?
eq "one epoch over every file while staging goes on: no wrong byte, no error (exit $rc, $(elapsed "$t") ms)" \
	"$rc:$(tail -n 1 "$T/ep.log")" "0:epochs 1 reads $(wc -l <"$T/files" | tr -d ' ') eio 0 wrong 0"
bb_fault_reset "$SLOW_URL"
check "staging completes" pl_wait_state "$D" 60
eq "state complete" "$pl_state" complete
check "the NVMe copy is complete and right" same_tree "$S" "$D/set"
timeout 20 "$BBCACHE" stop --job-dir "$D" >/dev/null 2>&1
check "stopped: nothing left in /dev/shm" test ! -e "/dev/shm/bbcache.$J"

echo "# the agent SIGKILLed mid-epoch, then restarted"
J=$((JB + 1))
D=$T/job$J
mkdir -p "$D"
pl_track_job "$J" "$D"
slow 2000000
# shm smaller than the data: readers keep missing, so they need the agent
"$BBCACHE" stage-in --async --job "$J" --jobs 2 --shm 8M --no-progress "$SLOW_URL/set/" "$D/set" >"$T/out.log" 2>&1 ||
	{ cat "$T/out.log"; bb_die "stage-in --async failed"; }
pid=$(pl_track_agent "$J" "$D")
pre timeout 90 "$BB_PYTHON" "$PYCLIENT" epoch "$D/set" "$S" 6 >"$T/ep.log" 2>&1 &
reader=$!
sleep 1
kill -9 "$pid"
sleep 0.2
check "the agent (pid $pid) is killed while the reader reads" sh -c "! grep -qv '^[^)]*) [ZX]' /proc/$pid/stat 2>/dev/null"
sleep 2
bb_fault_reset "$SLOW_URL"
rc=0
"$BBCACHED" --job "$J" --job-dir "$D" --manifest "$D/.bbcache/set.manifest" --shm-limit 8M --mode async \
	>"$T/out.log" 2>&1 || rc=$?
eq "a new agent starts over the same job" "$rc" 0
pl_track_agent "$J" "$D" >/dev/null
rc=0
wait "$reader" || rc=$?
tail -n 3 "$T/ep.log" | sed 's/^/    /'
check "the reader ended by itself (no hang: exit $rc, 124 is the timeout)" test "$rc" -ne 124
eq "the reader saw no wrong byte and no error across the kill and restart" "$rc:$(tail -n 1 "$T/ep.log" | sed 's/.* eio /eio /')" "0:eio 0 wrong 0"
check "the reader did more than one epoch" sh -c "tail -n 1 '$T/ep.log' | grep -qv '^epochs 1 '"
check "staging completes after the restart" pl_wait_state "$D" 60
eq "state complete" "$pl_state" complete

echo "# readers SIGKILLed while reading"
for i in 1 2 3; do
	pre timeout 60 "$BB_PYTHON" "$PYCLIENT" epoch "$D/set" "$S" 30 >"$T/kill$i.log" 2>&1 &
	eval "r$i=\$!"
done
sleep 2
# the python processes themselves (below the subshell and timeout)
victims=$(for i in 1 2 3; do eval "bb__descendants \$r$i"; done | while read -r p; do
	case $(cat "/proc/$p/comm" 2>/dev/null) in python3*) echo "$p" ;; esac
done)
# shellcheck disable=SC2086
kill -9 $victims 2>/dev/null
for i in 1 2 3; do eval "wait \$r$i"; done
eq "three readers killed mid-epoch" "$(echo $victims | wc -w | tr -d ' ')" 3
alive=""
for p in $victims; do
	[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] || [ ! -e "/proc/$p" ] || alive="$alive $p"
done
eq "the killed readers are gone" "$alive" ""
rc=0
pre timeout 60 "$BB_PYTHON" "$PYCLIENT" epoch "$D/set" "$S" 0 >"$T/ep.log" 2>&1 || rc=$?
eq "afterwards every file reads right through the interposer" "$rc:$(tail -n 1 "$T/ep.log" | sed 's/.* eio /eio /')" "0:eio 0 wrong 0"
got=$(sed "s|^|$D/set/|" "$T/files" | pre timeout 60 xargs -d '\n' cat | sha256sum)
eq "... and with cat" "$got" "$(sed "s|^|$S/|" "$T/files" | xargs -d '\n' cat | sha256sum)"
rc=0
timeout 30 "$BBCACHE" stop --job-dir "$D" >"$T/out.log" 2>&1 || rc=$?
eq "bbcache stop exits 0" "$rc" 0
check "nothing left in /dev/shm" test ! -e "/dev/shm/bbcache.$J"
eq "... not even under another name" "$(ls /dev/shm | grep -c "bbcache\.$J")" 0

echo "# the agent gone for good: a clear EIO, never wrong bytes, never a hang"
J=$((JB + 2))
D=$T/job$J
mkdir -p "$D"
pl_track_job "$J" "$D"
slow 100000
"$BBCACHE" stage-in --async --job "$J" --jobs 1 --no-progress "$SLOW_URL/set/" "$D/set" >"$T/out.log" 2>&1 ||
	{ cat "$T/out.log"; bb_die "stage-in --async failed"; }
pid=$(pl_track_agent "$J" "$D")
kill -9 "$pid"
t=$(now_ms)
rc=0
pre env BBCACHE_AGENT_TIMEOUT=2 timeout 30 cat "$D/set/$last" >"$T/dead.out" 2>"$T/dead.err" || rc=$?
ms=$(elapsed "$t")
check "cat of a file not yet staged fails (exit $rc, not 124: no hang; $ms ms)" sh -c "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
contains "... with EIO" "$T/dead.err" "Input/output error"
check "... having written no byte that is not the origin's" prefix "$T/dead.out" "$S/$last"
contains "... and the interposer names the file" "$T/dead.err" "$last"
rc=0
pre env BBCACHE_AGENT_TIMEOUT=2 timeout 30 "$BB_PYTHON" -c 'import errno, sys
try:
    open(sys.argv[1], "rb").read()
except OSError as e:
    sys.exit(0 if e.errno == errno.EIO else 2)
sys.exit(1)' "$D/set/$last" 2>/dev/null || rc=$?
eq "Python's read gets OSError EIO" "$rc" 0
bb_fault_reset "$SLOW_URL"
"$BBCACHED" --job "$J" --job-dir "$D" --manifest "$D/.bbcache/set.manifest" --mode async >"$T/out.log" 2>&1 ||
	{ cat "$T/out.log"; bad "the agent restarts"; }
pl_track_agent "$J" "$D" >/dev/null
rc=0
pre timeout 30 cat "$D/set/$last" >"$T/dead.out" 2>"$T/dead.err" || rc=$?
eq "with an agent back, the same read works" "$rc" 0
check "... every byte equal" cmp -s "$S/$last" "$T/dead.out"
check "staging completes" pl_wait_state "$D" 60
# An agent gone after the copy is whole: reads come from the NVMe copy.
pid=$(pl_agent_pid "$D")
kill -9 "$pid"
rm -f "/dev/shm/bbcache.$J" # and the segment with it: nothing in shm
rc=0
pre env BBCACHE_AGENT_TIMEOUT=2 timeout 10 cat "$D/set/$last" >"$T/dead.out" 2>"$T/dead.err" || rc=$?
eq "no agent, no segment, the NVMe copy whole: cat exits 0 (124 is a hang)" "$rc" 0
check "... every byte equal" cmp -s "$S/$last" "$T/dead.out"
rc=0
pre env BBCACHE_AGENT_TIMEOUT=2 timeout 30 "$BB_PYTHON" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
sys.stdout.buffer.write(os.pread(fd, 1 << 24, 0))' "$D/set/$last" >"$T/dead.out" 2>"$T/dead.err" || rc=$?
eq "... and os.pread the same (exit $rc)" "$rc:$(cmp -s "$S/$last" "$T/dead.out" && echo same)" "0:same"

echo "# /dev/shm full: a 1 MiB shm limit, reads come from the NVMe copy"
J=$((JB + 3))
D=$T/job$J
mkdir -p "$D"
pl_track_job "$J" "$D"
slow 4000000
"$BBCACHE" stage-in --async --job "$J" --jobs 2 --shm 1M --no-progress "$SLOW_URL/set/" "$D/set" >"$T/out.log" 2>&1 ||
	{ cat "$T/out.log"; bb_die "stage-in --async failed"; }
pl_track_agent "$J" "$D" >/dev/null
rc=0
pre timeout 60 "$BB_PYTHON" -c 'import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    sys.stdout.buffer.write(os.pread(fd, 1 << 24, 0))
    os.close(fd)' "$D/set/$last" "$D/set/big/huge.bin" >"$T/full.out" 2>"$T/full.err" || rc=$?
eq "os.pread of a late file and the 9 MiB file with shm full, during staging (exit $rc; 124 is a hang)" \
	"$rc:$(cat "$S/$last" "$S/big/huge.bin" | cmp -s - "$T/full.out" && echo same)" "0:same"
rc=0
pre timeout 15 cat "$D/set/big/huge.bin" >"$T/full.out" 2>"$T/full.err" || rc=$?
eq "cat (read()) of the 9 MiB file with shm full (exit $rc; 124 is a hang)" \
	"$rc:$(cmp -s "$S/big/huge.bin" "$T/full.out" && echo same)" "0:same"
rc=0
pre timeout 15 "$BB_PYTHON" "$PYCLIENT" epoch "$D/set" "$S" 0 >"$T/ep.log" 2>&1 || rc=$?
eq "an epoch of open().read() with shm full (exit $rc; 124 is a hang)" "$rc:$(tail -n 1 "$T/ep.log" | sed 's/.* eio /eio /')" "0:eio 0 wrong 0"
bb_fault_reset "$SLOW_URL"
check "staging completes" pl_wait_state "$D" 60
pl_status "$D"
n=$(jget "$T/st.json" 'j["fetch"]["disk"]')
check "the agent answered DISK (fetch.disk $n)" test "${n:-0}" -ge 1 2>/dev/null
timeout 20 "$BBCACHE" stop --job-dir "$D" >/dev/null 2>&1
check "stopped: nothing left in /dev/shm" test ! -e "/dev/shm/bbcache.$J"

echo "# a really full shm file system: the agent runs without a shm cache, reads from NVMe"
J=$((JB + 9))
D=$T/job$J
FULL=$T/fullshm
mkdir -p "$D" "$FULL"
mount -t tmpfs -o size=4m bbtest-fullshm "$FULL" || bb_die "cannot mount a tmpfs on $FULL (run as root)"
full_umount() { umount "$FULL" 2>/dev/null; }
trap 'full_umount; pl_cleanup' EXIT
head -c 8M /dev/zero >"$FULL/filler" 2>/dev/null || true
pl_track_job "$J" "$D"
"$BBCACHE" stage-in --job "$J" --no-progress "$S/" "$D/set" >"$T/out.log" 2>&1 ||
	{ cat "$T/out.log"; full_umount; bb_die "stage-in failed"; }
rm -rf "$D/set" # the agent stages it again, and has no shm to put it in
rc=0
"$BBCACHED" --job "$J" --job-dir "$D" --manifest "$D/.bbcache/set.manifest" --shm-dir "$FULL" \
	--shm-limit 64M --mode async >"$T/out.log" 2>&1 || rc=$?
eq "the agent starts although $FULL is full (exit $rc)" "$rc" 0
pl_track_agent "$J" "$D" >/dev/null
check "its log says reads come from the NVMe copy" grep -q "NVMe copy only" "$D/.bbcache/agent.log"
rc=0
pre timeout 60 "$BB_PYTHON" "$PYCLIENT" epoch "$D/set" "$S" 0 >"$T/ep.log" 2>&1 || rc=$?
eq "an epoch with no shm cache at all (exit $rc; 124 is a hang)" "$rc:$(tail -n 1 "$T/ep.log" | sed 's/.* eio /eio /')" "0:eio 0 wrong 0"
timeout 20 "$BBCACHE" stop --job-dir "$D" >/dev/null 2>&1
check "stopped: nothing of the job left in $FULL" test ! -e "$FULL/bbcache.$J"
full_umount
trap 'pl_cleanup' EXIT

echo "# another user: the job runs as bbtest, bbtest2 tries to read"
for u in bbtest bbtest2; do
	id "$u" >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin "$u" ||
		bb_die "cannot create the test user $u (run as root)"
done
as() { _u=$1; shift; setpriv --reuid "$_u" --regid "$_u" --clear-groups env HOME=/nonexistent "$@"; }
mkdir -p "$T/bin"
cp "$BBCACHE" "$BBCACHED" "$PYCLIENT" "$T/bin/"
chmod 0755 "$T/bin" "$T/bin"/*
J=$((JB + 4))
D=$T/job$J
mkdir -p "$D"
chown bbtest:bbtest "$D"
chmod 0755 "$D"
pl_track_job "$J" "$D"
rc=0
as bbtest "$T/bin/bbcache" stage-in --async --job "$J" --no-progress "$NGINX_URL/set/" "$D/set" >"$T/out.log" 2>&1 || rc=$?
eq "bbtest starts its job's agent (stage-in --async)" "$rc" 0
[ "$rc" -eq 0 ] || cat "$T/out.log"
as bbtest "$T/bin/bbcache" status --json --job-dir "$D" >"$T/st.json" 2>/dev/null
jget "$T/st.json" 'j["pid"]' >>"$T/pids.$J"
eq "the agent runs as bbtest" "$(ps -o user= -p "$(tail -n 1 "$T/pids.$J")" 2>/dev/null | tr -d ' ')" bbtest
i=0
while [ $i -lt 300 ]; do
	as bbtest "$T/bin/bbcache" status --json --job-dir "$D" >"$T/st.json" 2>/dev/null
	[ "$(jget "$T/st.json" 'j["state"]')" = complete ] && break
	sleep 0.1
	i=$((i + 1))
done
eq "bbtest's staging completes" "$(jget "$T/st.json" 'j["state"]')" complete
eq "the segment is bbtest's, mode 600" "$(stat -c '%U %a' "/dev/shm/bbcache.$J" 2>&1)" "bbtest 600"
got=$(sed "s|^|$D/set/|" "$T/files" | pre -u bbtest xargs -d '\n' cat 2>/dev/null | sha256sum)
eq "bbtest reads every file through the interposer" "$got" "$(sed "s|^|$S/|" "$T/files" | xargs -d '\n' cat | sha256sum)"
ino=$(pre -u bbtest stat -c %i "$D/set/$last" 2>/dev/null)
eq "... served by the interposer" "$(( ${ino:-0} >> 62 ))" 1
intruder_reads() { # DESC: bbtest2 gets no byte of a staged file through the interposer
	rc=0
	pre -u bbtest2 env BBCACHE_AGENT_TIMEOUT=2 timeout 30 cat "$D/set/$last" >"$T/intr.out" 2>"$T/intr.err" || rc=$?
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ ! -s "$T/intr.out" ]; then
		ok "$1 (exit $rc: $(head -n 1 "$T/intr.err"))"
	else
		bad "$1 (exit $rc, $(wc -c <"$T/intr.out" | tr -d ' ') bytes)"
	fi
}
intruder_reads "bbtest2 cannot read a staged file through the interposer"
rc=0
as bbtest2 "$BB_PYTHON" "$T/bin/pyclient.py" hello "$D/.bbcache/agent.sock" >"$T/out.log" 2>&1 || rc=$?
eq "bbtest2 cannot connect to the agent's socket" "$rc" 2
rc=0
as bbtest2 "$BB_PYTHON" -c 'import sys; open(sys.argv[1], "rb")' "/dev/shm/bbcache.$J" >"$T/out.log" 2>&1 || rc=$?
check "bbtest2 cannot open /dev/shm/bbcache.$J" sh -c "[ $rc -ne 0 ] && grep -q PermissionError '$T/out.log'"
rc=0
as bbtest "$BB_PYTHON" "$T/bin/pyclient.py" hello "$D/.bbcache/agent.sock" >"$T/out.log" 2>&1 || rc=$?
eq "control: bbtest's HELLO is answered" "$rc" 0
# An admin's mistake opens the modes: SO_PEERCRED and the segment's mode
# still keep bbtest2 out.
chmod 0755 "$D/.bbcache"
chmod 0644 "$D/.bbcache/agent.ns"
chmod 0666 "$D/.bbcache/agent.sock"
rc=0
as bbtest2 "$BB_PYTHON" "$T/bin/pyclient.py" hello "$D/.bbcache/agent.sock" >"$T/out.log" 2>&1 || rc=$?
eq "modes opened: bbtest2 connects, but the agent closes the connection (SO_PEERCRED)" "$rc" 3
intruder_reads "modes opened: bbtest2 still cannot read a staged file through the interposer"
chmod 0700 "$D/.bbcache"
chmod 0600 "$D/.bbcache/agent.ns" "$D/.bbcache/agent.sock"
rc=0
as bbtest timeout 30 "$T/bin/bbcache" stop --job-dir "$D" >"$T/out.log" 2>&1 || rc=$?
eq "bbtest stops its agent" "$rc" 0
check "nothing left in /dev/shm" test ! -e "/dev/shm/bbcache.$J"

pl_stop_agents
pl_finish
