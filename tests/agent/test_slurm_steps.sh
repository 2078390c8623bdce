#!/bin/sh
# `bbcache slurm ...`, the steps burst_buffer.lua and bbcache_spank.so run,
# by hand and without Slurm (tests/slurm/ runs them under a real Slurm):
# data-in lists as the user and refuses root; a missing origin names the
# line; prolog makes $BB_JOB_DIR the user's, 0700, and never follows a link
# planted where it goes; agent + wait stage mode=wait data; stage-out as the
# user, its failure reported by data-out and its sources kept by epilog;
# epilog stops the agent, removes the shm segment and the job directory
# without following links; teardown forgets the job.  Root; a file:// origin.
set -u
: "${BB_ORIGINS_DIR:=$(cd "$(dirname "$0")/../origins" && pwd)}"
. "$BB_ORIGINS_DIR/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
BBCACHE=${BBCACHE:-$here/../../agent/bbcache}
BBCACHED=${BBCACHED:-$here/../../agent/bbcached}
for b in "$BBCACHE" "$BBCACHED"; do
	[ -x "$b" ] || bb_die "$b not built (make check builds it)"
done
[ "$(id -u)" = 0 ] || bb_die "must run as root (it becomes the test user)"
bb_require setpriv
if ! id bbtest >/dev/null 2>&1; then
	useradd -r -M -s /usr/sbin/nologin bbtest || bb_die "cannot create the test user bbtest"
fi
U=$(id -u bbtest)
G=$(id -g bbtest)

T=$(bb_tmpdir)
chmod 0755 "$T"
# The binaries where the test user can run them (the build dir may not be).
mkdir -p "$T/bin"
cp "$BBCACHE" "$BBCACHED" "$T/bin/"
chmod 0755 "$T/bin" "$T/bin"/*
B=$T/bin/bbcache
job=$((800000 + $$ % 100000))
cleanup() {
	pkill -KILL -u bbtest -f "bbcached --job $job" 2>/dev/null
	rm -f "/dev/shm/bbcache.$job"
	bb_stop_all
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$T/src/sub" "$T/out"
for i in 1 2 3 4; do head -c $((i * 300000)) /dev/urandom >"$T/src/f$i"; done
echo hello >"$T/src/sub/g"
chmod -R a+rX "$T/src"
chmod 0777 "$T/out"
cat >"$T/bb.conf" <<EOF
nvme_root = $T/nvme
state_dir = $T/state
shm_dir = /dev/shm
EOF
C="--conf $T/bb.conf"
cat >"$T/job.sh" <<'EOF'
#!/bin/sh
#SBATCH -t 2
#BB stage_in source=file://@T@/src/ destination=$BB_JOB_DIR/data type=directory mode=wait
#BB stage_in source=file://@T@/src/f1 destination=$BB_JOB_DIR/one.bin type=file
#BB stage_out source=$BB_JOB_DIR/ckpt destination=file://@T@/out/%j/ type=directory
#BB cache shm=64MiB
echo the script
EOF
sed -i "s|@T@|$T|g" "$T/job.sh"
S=$T/state/job.$job
JD=$T/nvme/job.$job
as_user() { setpriv --reuid bbtest --regid bbtest --clear-groups "$@"; }
mode() { stat -c '%a %U' "$1" 2>/dev/null; }

echo "# data-in"
"$B" slurm data-in --job "$job" $C "$T/job.sh" >"$T/o" 2>&1
eq "data-in without --uid and without setup fails" "$?" 1
contains "... saying setup did not run" "$T/o" "setup did not run"

"$B" slurm data-in --job "$job" --uid 0 --gid 0 $C "$T/job.sh" >"$T/o" 2>&1
eq "data-in for uid 0 fails" "$?" 1
contains "... saying root cannot use burst buffers" "$T/o" "root cannot use burst buffers"

sed "s|file://$T/src/f1|file://$T/nosuch/f1|" "$T/job.sh" >"$T/bad.sh"
"$B" slurm data-in --job "$job" --uid "$U" --gid "$G" $C "$T/bad.sh" >"$T/o" 2>&1
eq "data-in of a missing origin fails" "$?" 1
contains "... naming the line and the source" "$T/o" "line 4: stage_in source=file://$T/nosuch/f1"

"$B" slurm setup --job "$job" --uid "$U" --gid "$G" $C >"$T/o" 2>&1
eq "setup records the owner" "$?" 0
"$B" slurm data-in --job "$job" $C "$T/job.sh" >"$T/o" 2>&1
eq "data-in (uid from setup) lists both origins" "$?" 0
contains "... the directory: 5 files" "$T/o" "line 3: listed file://$T/src/: 5 file(s)"
eq "state dir: root's, 0711" "$(mode "$S")" "711 root"
eq "plan: root's" "$(mode "$S/plan")" "644 root"
eq "listings: the user's, 0700" "$(mode "$S/user")" "700 bbtest"
eq "a listing is the user's, 0600" "$(mode "$S/user/in.0.manifest")" "600 bbtest"
check "no listing left elsewhere" test ! -e "$T/nvme"

echo "# prolog"
"$B" slurm prolog --job 1 $C >"$T/o" 2>&1
eq "prolog of a job without #BB lines: nothing to do" "$?" 0
check "... and no job directory" test ! -e "$T/nvme/job.1"
# A link planted where the job directory goes (nvme_root is shared).
mkdir -p "$T/nvme" "$T/victim"
echo precious >"$T/victim/file"
ln -s "$T/victim" "$JD"
"$B" slurm prolog --job "$job" $C >"$T/o" 2>&1
eq "prolog succeeds" "$?" 0
eq "\$BB_JOB_DIR is a real directory, the user's, 0700" "$(mode "$JD") $(test -L "$JD" && echo link)" \
	"700 bbtest "
eq "the planted link's target is untouched" "$(mode "$T/victim") $(cat "$T/victim/file")" \
	"755 root precious"
check "the listings are in place for the agent" test -s "$JD/.bbcache/data.manifest" -a \
	-s "$JD/.bbcache/one.bin.manifest"
eq "... the user's" "$(mode "$JD/.bbcache/data.manifest")" "600 bbtest"

echo "# agent, wait"
as_user "$B" slurm agent --job "$job" $C >"$T/agent.out" 2>&1 &
as_user "$B" slurm wait --job "$job" --timeout 60 $C >"$T/o" 2>&1
eq "wait returns once mode=wait data is staged" "$?" 0
contains "... and says so" "$T/o" "mode=wait data staged"
check "the staged directory equals the origin" \
	[ "$(bb_sha_tree "$T/src")" = "$(bb_sha_tree "$JD/data")" ]
"$B" status --job "$job" $C >"$T/o" 2>&1
eq "bbcache status --job ID answers root" "$?" 0
contains "... with the staged count" "$T/o" "staged    6 of 6 file(s)"
"$B" slurm status $C >"$T/o" 2>&1
contains "slurm status: the job, its user and what was listed" "$T/o" "$job     bbtest     in=2 out=1 listed 6 file(s)"
check "the shm segment exists while the agent runs" test -e "/dev/shm/bbcache.$job"

echo "# stage-out, data-out"
"$B" slurm stage-out --job "$job" $C >"$T/o" 2>&1
eq "stage-out of a missing source fails" "$?" 1
contains "... naming it" "$T/o" "ckpt: No such file or directory (the job wrote nothing there)"
"$B" slurm data-out --job "$job" $C >"$T/o" 2>&1
eq "data-out reports the failure" "$?" 1
contains "... with the reason" "$T/o" "stage-out failed: line 5: stage_out $JD/ckpt"
as_user sh -c "mkdir $JD/ckpt && echo model >$JD/ckpt/m.pt"
"$B" slurm stage-out --job "$job" $C >"$T/o" 2>&1
eq "stage-out (run as root) succeeds" "$?" 0
eq "the copy is the user's (it ran as the user)" "$(mode "$T/out/$job/m.pt") $(cat "$T/out/$job/m.pt")" \
	"600 bbtest model"
"$B" slurm data-out --job "$job" $C >"$T/o" 2>&1
eq "data-out reports success" "$?" 0
contains "... with what was copied" "$T/o" "stage-out done: 1 file(s), 6 B"

echo "# epilog"
# A link inside the job directory, to something the user does not own.
as_user ln -s "$T/victim" "$JD/data/evil"
"$B" slurm epilog --job "$job" $C >"$T/o" 2>&1
eq "epilog succeeds" "$?" 0
contains "... stopped the agent" "$T/o" "stopped 1 leftover agent process(es)"
check "... no bbcached of the job is left" sh -c "! pgrep -u bbtest -f 'bbcached --job $job' >/dev/null"
check "... the shm segment is gone" test ! -e "/dev/shm/bbcache.$job"
check "... the job directory is gone" test ! -e "$JD"
eq "... and the link's target is untouched" "$(cat "$T/victim/file")" "precious"

echo "# a failed stage-out keeps its sources"
"$B" slurm prolog --job "$job" $C >/dev/null 2>&1
as_user sh -c "mkdir -p $JD/ckpt $JD/data && echo keep >$JD/ckpt/m.pt && echo cache >$JD/data/f1"
rm -rf "$T/out/$job"
mkdir "$T/out/$job"
chmod 0555 "$T/out/$job"
"$B" slurm stage-out --job "$job" $C >"$T/o" 2>&1
eq "stage-out into a read-only destination fails" "$?" 1
"$B" slurm epilog --job "$job" $C >"$T/o" 2>&1
eq "epilog succeeds" "$?" 0
contains "... saying what it kept" "$T/o" "stage-out failed: kept $JD"
eq "... the stage-out source is kept" "$(cat "$JD/ckpt/m.pt" 2>&1)" "keep"
check "... the staged copy is not" test ! -e "$JD/data"
check "... nor the listings" test ! -e "$JD/.bbcache/data.manifest"
check "... the result stays for the user" test -s "$JD/.bbcache/out.result"
rm -rf "$JD"

echo "# teardown"
rm -f "$S/user/out.result"
"$B" slurm data-out --job "$job" --timeout 1 $C >"$T/o" 2>&1
eq "data-out without a result gives up after its timeout" "$?" 1
contains "... saying stage-out did not report" "$T/o" "stage-out did not report within 1 s"
"$B" slurm teardown --job "$job" --hurry $C >"$T/o" 2>&1
eq "teardown succeeds" "$?" 0
check "... the controller state is gone" test ! -e "$S"
"$B" slurm teardown --job "$job" $C >"$T/o" 2>&1
eq "teardown of a job without state is not an error" "$?" 0
"$B" slurm prolog --job "x1" $C >"$T/o" 2>&1
eq "a bad job id is refused" "$?" 2

bb_checks_done
