#!/bin/bash
# #BB jobs end to end on a real one-node Slurm (tests/slurm/slurm-env.sh with
# the full bbcache setup: burst_buffer.lua, the SPANK plugin, bbcache.conf):
#
#   A  mode=wait: an S3 directory (s3rver), an HTTP file (nginx) and a slow
#      HTTP file (faultsrv in front of nginx); the batch script starts only
#      when all is staged, reads every byte through the interposer (sha256sum,
#      cat) and through a PyTorch DataLoader, and writes $BB_JOB_DIR/ckpt,
#      which stage_out puts in s3rver (compared byte for byte).
#   B  mode=async: a slow HTTP directory; the script starts while staging
#      runs and still reads the origin's bytes (served on demand).
#   C  data_in fails (a missing bucket): the job is held with a readable
#      reason in `scontrol show job`; scancel then removes its state.
#   D  scancel while staging: nothing is left (NVMe dir, /dev/shm segment,
#      agent, controller state); meanwhile a second user can read neither
#      the job's directory, its socket nor its shm segment.
#   E  mode=wait staging fails on the node (a 403 after the listing): the
#      script does not run and stage-out copies nothing out.
#   +  sbatch refuses a disallowed origin and a cache over the site's limit;
#      the S3 secret (only in the user's ~/.aws/credentials) appears nowhere:
#      `scontrol show job -d`, bbstat, sacct if accounting exists, every
#      Slurm and bbcache log and state file, the jobs' environments.
#
# Root; Slurm, munge, nginx, s3rver (contrib/install-deps.sh) and a build
# with the SPANK plugin.  Missing pieces fail the test, never skip it.
#
#   tests/slurm/test_slurm_job.sh BUILD_DIR
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
b=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd) || exit 1
[ "$(id -u)" = 0 ] || { echo "$0: must run as root (it starts Slurm)" >&2; exit 1; }

BB_ORIGINS_DIR=$top/tests/origins
. "$BB_ORIGINS_DIR/lib.sh"
trap bb_stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for c in python3 nginx curl aws s3rver sha256sum setpriv; do bb_require "$c"; done
/usr/bin/python3 -c 'import torch' 2>/dev/null ||
	bb_die "/usr/bin/python3 cannot import torch: install python3-torch (contrib/install-deps.sh)"

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
now() { date +%s.%N; }
t_start=$(now)
T=$(bb_tmpdir)
chmod 0700 "$T"

# ---------------------------------------------------------------- origins
# s3rver with a key pair of this run only (its built-in S3RVER key revoked):
# the secret exists in the wrapper (0600, in $T), the test user's
# ~/.aws/credentials and this shell's variables, nowhere else.
secret="bbSecret$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
key="BBKEY$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)"
s3rver_dir=$(cd "$(dirname "$BB_S3RVER_JS")/.." && pwd)
(umask 077 && cat >"$T/s3rver-wrap.js" <<EOF
const acct = require('$s3rver_dir/lib/models/account');
acct.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
acct.DUMMY_ACCOUNT.createKeyPair('$key', '$secret');
require('$s3rver_dir/bin/s3rver.js');
EOF
)
BB_S3RVER_JS=$T/s3rver-wrap.js bb_start_s3rver "$T/s3" >/dev/null
# bb_start_s3rver exports the default keys; nothing here uses them.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
# s3 ARGS...: bb_s3 with this run's key pair, at most 2 minutes.
s3() {
	bb__aws_config
	timeout 120 env -u AWS_PROFILE -u AWS_CA_BUNDLE -u AWS_ENDPOINT_URL \
		AWS_CONFIG_FILE="$BB_TMP/aws-config" AWS_SHARED_CREDENTIALS_FILE="$BB_TMP/aws-credentials" \
		AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_REGION=us-east-1 \
		AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_PAGER= \
		"$BB_AWS" --endpoint-url "$S3_ENDPOINT" "$@"
}

echo "# datasets"
bb_make_dataset "$T/src/set" 40 0-300K 1
bb_make_dataset "$T/src/set/big" 1 9M 2        # > 8 MiB: staged in ranges
mkdir -p "$T/www/slow" "$T/www/stall"
bb_make_dataset "$T/www/aset" 30 0-200K 3
bb_make_dataset "$T/www/aset/big" 2 8M 4 # one whole GET each: 8.4 s
bb_make_dataset "$T/www/stall" 2 8M 5
head -c 5M /dev/urandom >"$T/www/blob.bin"
head -c 4M /dev/urandom >"$T/www/slow/slowfile.bin"
mkdir -p "$T/www/gone"
head -c 1M /dev/urandom >"$T/www/gone/a-ok.bin"
head -c 1M /dev/urandom >"$T/www/gone/b-bad.bin"
s3 s3 mb s3://datasets >/dev/null || bb_die "s3 mb datasets"
s3 s3 mb s3://runs >/dev/null || bb_die "s3 mb runs"
s3 s3 sync --only-show-errors "$T/src/set" s3://datasets/set/ || bb_die "s3 sync"
bb_start_nginx "$T/www" >/dev/null
NGINX_URL=$HTTP_URL
bb_start_faultsrv --upstream "$NGINX_URL" >/dev/null
SLOW_URL=$FAULT_URL
# Whole-object GETs (the prefetch, files <= 8 MiB) are slow; ranged GETs
# (a reader's on-demand fetch) pass at full speed, except under /stall/.
bb_fault '[{"match": "/slow/*", "mode": "slow", "rate": 1000000, "range": false, "count": -1},
	{"match": "/aset/*", "mode": "slow", "rate": 1000000, "range": false, "count": -1},
	{"match": "/stall/*", "mode": "slow", "rate": 100000, "count": -1},
	{"match": "/gone/*-bad.bin", "mode": "403", "count": -1}]' "$SLOW_URL"
t_origins=$(now)

# ---------------------------------------------------------------- slurm
SLURM_ENV_BBCACHE=$b
SLURM_ENV_S3_ENDPOINT=$S3_ENDPOINT
SLURM_ENV_S3_KEY=$key
SLURM_ENV_S3_SECRET=$secret
SLURM_ENV_ALLOWED_ORIGINS="s3://datasets/*, s3://runs/*, s3://bbtest-missing/*, $NGINX_URL/*, $SLOW_URL/*"
SLURM_ENV_BBCONF_EXTRA="shm_limit_per_job = 512MiB"
SLURM_ENV_WAIT_TIMEOUT=120
. "$here/slurm-env.sh"
echo "# slurm up in $(secs "$t_origins" "$(now)") s (top $SLURM_TOP, users $SLURM_TEST_USER $SLURM_TEST_USER2)"
U=$SLURM_TEST_USER
U2=$SLURM_TEST_USER2
J=$SLURM_TOP/jobs
SNAP=$T/snap # copies of state taken while jobs ran (for the secret check)
mkdir -p "$SNAP"
ALLJOBS=""

# Processes of this run: the test users' (job steps, agents) and
# slurmstepd, recognised by our SLURM_CONF or $SLURM_TOP in their
# environment or command line (other tests on this machine may use the same
# users).
my_procs() {
	local p u
	for p in $(ps -e -o pid= 2>/dev/null); do
		[ "$p" = $$ ] && continue
		u=$(stat -c %U "/proc/$p" 2>/dev/null) || continue
		case $u in
		"$U" | "$U2") ;;
		root) grep -q '^slurmstepd' "/proc/$p/comm" 2>/dev/null || continue ;;
		*) continue ;;
		esac
		if tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qxF "SLURM_CONF=$SLURM_CONF" ||
			tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF "$SLURM_TOP"; then
			echo "$p"
		fi
	done
}
ps_of() { # PIDS...: one line each
	local p
	for p in "$@"; do
		echo "pid $p ($(stat -c %U "/proc/$p" 2>/dev/null)): $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | cut -c1-200)"
	done
}

cleanup() {
	local ids p left i
	if [ -n "${SLURM_TOP:-}" ] && [ -d "$SLURM_TOP/run" ]; then
		ids=$(squeue -h -o %i 2>/dev/null)
		if [ -n "$ids" ]; then
			# shellcheck disable=SC2086
			scancel $ids 2>/dev/null
			for i in $(seq 1 100); do
				[ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
				sleep 0.1
			done
		fi
		for i in $(seq 1 50); do
			left=$(my_procs)
			[ -z "$left" ] && break
			sleep 0.1
		done
		if [ -n "$left" ]; then
			echo "# cleanup: killing leftover processes of this run:" >&2
			ps_of $left | sed 's/^/#   /' >&2
			# shellcheck disable=SC2086
			kill -KILL $left 2>/dev/null
		fi
		if [ "$failed" -gt 0 ] && [ "${SLURM_ENV_KEEP:-0}" != 1 ]; then
			slurm_env_logs
		fi
	fi
	for i in $ALLJOBS; do rm -f "/dev/shm/bbcache.$i"; done
	slurm_env_stop
	bb_stop_all
}
trap cleanup EXIT

# ---------------------------------------------------------------- helpers
# submit NAME: sbatch $J/NAME.sh as the test user, with a clean login-like
# environment (no AWS_* variables: credentials come from ~/.aws only).
# Sets $jid (empty on failure), $out (sbatch's output), $t_submit.
submit() {
	chmod 0644 "$J/$1.sh"
	t_submit=$(now)
	out=$(cd "$J" && timeout 30 runuser -u "$U" -- env -i PATH=/usr/local/bin:/usr/bin:/bin \
		HOME="$SLURM_TEST_HOME" USER="$U" LOGNAME="$U" LANG=C.UTF-8 SLURM_CONF="$SLURM_CONF" \
		sbatch --parsable -o "$J/$1.out" -D "$J" "$J/$1.sh" 2>&1)
	rc=$?
	jid=
	if [ $rc = 0 ] && [ -n "$out" ] && [ -z "${out//[0-9]/}" ]; then
		jid=$out
		ALLJOBS="$ALLJOBS $jid"
	fi
}
job_field() { # ID FIELD
	scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}
# held ID: the job is pending with priority 0 (burst_buffer/lua holds a job
# whose data_in failed): no point waiting for it.
held() {
	[ "$(job_field "$1" JobState)" = PENDING ] && [ "$(job_field "$1" Priority)" = 0 ]
}
# wait_done ID SECONDS: until the job ends; prints its final state (or
# HELD: reason).
wait_done() {
	local i st n=$(($2 * 10))
	for i in $(seq 1 $n); do
		st=$(job_field "$1" JobState)
		if held "$1"; then
			echo "HELD: $(job_field "$1" Reason)"
			return
		fi
		case $st in
		COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
			echo "$st"
			return
			;;
		esac
		sleep 0.1
	done
	echo "${st:-UNKNOWN}-after-$2-s"
}
# jget FILE EXPR: a field of the JSON in FILE ("?" if unreadable)
jget() { "$BB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(eval(sys.argv[2], {"j": j}))' "$1" "$2" 2>/dev/null || echo "?"; }
# gone_within SECONDS ID: until nothing of job ID is left on the node and
# the controller; sets $left to what is still there.
job_leftovers() {
	local p
	left=""
	[ -e "$BBCACHE_NVME/job.$1" ] && left="$left NVMe:$BBCACHE_NVME/job.$1"
	[ -e "/dev/shm/bbcache.$1" ] && left="$left shm:/dev/shm/bbcache.$1"
	[ -e "$BBCACHE_STATE/job.$1" ] && left="$left state:$BBCACHE_STATE/job.$1"
	p=$(my_procs)
	[ -n "$p" ] && left="$left processes:[$(ps_of $p | tr '\n' ';')]"
	[ -z "$left" ]
}
gone_within() {
	local i
	for i in $(seq 1 $(($1 * 10))); do
		job_leftovers "$2" && return 0
		sleep 0.1
	done
	return 1
}
show_job_failure() { # NAME ID: the job's output, its record and the bbcache logs
	echo "#   --- $J/$1.out"
	sed 's/^/#   /' "$J/$1.out" 2>/dev/null | tail -n 30
	echo "#   --- scontrol show job $2"
	scontrol show job "$2" 2>&1 | sed 's/^/#   /'
	echo "#   --- slurmctld.log (burst buffer lines)"
	grep -iE 'burst|bb_|lua' "$SLURM_TOP/log/slurmctld.log" 2>/dev/null | grep -F -e "$2" -e 'error' |
		tail -n 15 | sed 's/^/#   /'
	echo "#   --- slurmd.log"
	grep -F -e "$2" -e spank -e error "$SLURM_TOP/log/slurmd.log" 2>/dev/null | tail -n 15 | sed 's/^/#   /'
}
snap_job() { # ID TAG: copy the job's controller state and .bbcache files (logs, not the socket)
	mkdir -p "$SNAP/$2"
	[ -d "$BBCACHE_STATE/job.$1" ] && cp -r "$BBCACHE_STATE/job.$1" "$SNAP/$2/state" 2>/dev/null
	[ -d "$BBCACHE_NVME/job.$1/.bbcache" ] &&
		find "$BBCACHE_NVME/job.$1/.bbcache" -maxdepth 1 -type f -exec cp {} "$SNAP/$2/" \; 2>/dev/null
	scontrol show job -d "$1" >"$SNAP/$2/scontrol-show-job-d.txt" 2>&1
}

# The job's checks, written by the batch script into $J/NAME.*:
# every file of a staged directory through the interposer (find + sha256sum
# under the plugin's LD_PRELOAD) and through a PyTorch DataLoader with two
# forked workers (dl_check.py), the environment, bbcache status --json.
cat >"$J/dl_check.py" <<'EOF'
"""Every file under ROOT through a torch DataLoader (2 forked workers),
sha256 against SUMS ("sha256  ./rel" lines); each worker says whether the
bbcache interposer is mapped in it."""
import hashlib
import os
import sys

import torch.utils.data as tud

root, sums = sys.argv[1], sys.argv[2]
want = {}
for line in open(sums):
    h, p = line.rstrip("\n").split("  ", 1)
    want[os.path.normpath(p)] = h
files = sorted(os.path.relpath(os.path.join(d, f), root)
               for d, _, fs in os.walk(root) for f in fs)


class Files(tud.Dataset):
    def __len__(self):
        return len(files)

    def __getitem__(self, i):
        with open(os.path.join(root, files[i]), "rb") as f:
            data = f.read()
        with open("/proc/self/maps") as m:
            pre = "libbbcache_preload" in m.read()
        return files[i], hashlib.sha256(data).hexdigest(), len(data), os.getpid(), pre


got, pids, nopre, nbytes = {}, set(), 0, 0
for batch in tud.DataLoader(Files(), batch_size=4, num_workers=2, collate_fn=list):
    for name, h, n, pid, pre in batch:
        got[name] = h
        pids.add(pid)
        nbytes += n
        nopre += not pre
bad = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
print(f"dataloader: {len(got)} of {len(want)} files, {nbytes} bytes, {len(pids)} worker pid(s), "
      f"{nopre} read(s) without the interposer, {len(bad)} differ")
for k in bad[:10]:
    print(f"  differs: {k}: origin {want.get(k)} read {got.get(k)}")
ok = not bad and len(got) == len(want) and nopre == 0 and os.getpid() not in pids and len(pids) >= 1
print("DATALOADER-OK" if ok else "DATALOADER-BAD")
sys.exit(0 if ok else 1)
EOF
bb_sha_tree "$T/src/set" >"$J/set.sums"
bb_sha_tree "$T/www/aset" >"$J/aset.sums"
chmod 0644 "$J/dl_check.py" "$J/set.sums" "$J/aset.sums"

# job_body NAME DATASET...: the batch script's checks (after the #BB lines)
job_body() {
	local name=$1 d
	shift
	cat <<EOF
o=$J/$name
date +%s.%N >\$o.start
$BBCACHE_BIN status --json >\$o.status0.json 2>&1
env | LC_ALL=C sort >\$o.env
grep -c libbbcache_preload /proc/self/maps >\$o.maps 2>&1
EOF
	for d in "$@"; do
		cat <<EOF
(cd "\$BB_JOB_DIR/$d" && find . -type f | LC_ALL=C sort | xargs -r sha256sum) >\$o.$d.sums 2>\$o.$d.err
timeout 150 /usr/bin/python3 $J/dl_check.py "\$BB_JOB_DIR/$d" $J/$d.sums >\$o.$d.dl 2>&1
echo "rc=\$?" >>\$o.$d.dl
EOF
	done
}
job_tail() { # NAME
	cat <<EOF
$BBCACHE_BIN status --json >\$o.status1.json 2>&1
mkdir -p \$o.bblogs && find "\$BB_JOB_DIR/.bbcache" -maxdepth 1 -type f -exec cp {} \$o.bblogs/ \\; 2>/dev/null
echo job-script-done
EOF
}

echo "# sbatch refuses what the site's bbcache.conf forbids"
refuse() { # NAME WHAT EXPECTED... -- DIRECTIVE
	local name=$1 what=$2 line e ok_=1
	shift 2
	printf '%s\n' '#!/bin/sh' '#SBATCH -t 1' "${@: -1}" 'echo must-not-run' >"$J/$name.sh"
	submit "$name"
	for e in "${@:1:$#-1}"; do
		printf '%s' "$out" | grep -qF -- "$e" || ok_=0
	done
	if [ $rc != 0 ] && [ $ok_ = 1 ]; then
		ok "refused: $what ($(printf '%s' "$out" | tr '\n' ' ' | cut -c1-170))"
	else
		bad "refused: $what, naming $*: rc=$rc: $out"
	fi
}
refuse origin "an origin outside allowed_origins" "s3://forbidden/x/" "allowed_origins" "line 3" \
	'#BB stage_in source=s3://forbidden/x/ destination=$BB_JOB_DIR/x type=directory'
refuse shmlimit "a cache over shm_limit_per_job" "shm=4GiB" "shm_limit_per_job" "line 3" \
	'#BB cache shm=4GiB'

# ---------------------------------------------------------------- job A
echo "# A: mode=wait: an S3 directory, an HTTP file, a slow HTTP file; stage_out"
{
	echo '#!/bin/bash'
	echo '#SBATCH -t 3'
	echo '#SBATCH -J bbA'
	echo '#BB stage_in source=s3://datasets/set/ destination=$BB_JOB_DIR/set type=directory mode=wait'
	echo "#BB stage_in source=$NGINX_URL/blob.bin destination=\$BB_JOB_DIR/blob.bin type=file mode=wait"
	echo "#BB stage_in source=$SLOW_URL/slow/slowfile.bin destination=\$BB_JOB_DIR/slow.bin type=file mode=wait"
	echo '#BB stage_out source=$BB_JOB_DIR/ckpt destination=s3://runs/%j/ type=directory'
	echo '#BB cache shm=256MiB'
	job_body A set
	cat <<'EOF'
cat "$BB_JOB_DIR/blob.bin" | sha256sum >$o.blob.sum
sha256sum <"$BB_JOB_DIR/slow.bin" >$o.slow.sum
# mpirun ranks: task_init saw only the batch task; they inherit the
# environment and read through the interposer.
timeout 60 mpirun --oversubscribe -np 2 sh -c 'echo "rank $OMPI_COMM_WORLD_RANK dir=$BB_JOB_DIR preload=$LD_PRELOAD $(sha256sum <$BB_JOB_DIR/blob.bin | cut -d" " -f1) maps=$(grep -c libbbcache_preload /proc/self/maps)"' >$o.mpi 2>&1
mkdir -p "$BB_JOB_DIR/ckpt/sub"
cp "$BB_JOB_DIR/blob.bin" "$BB_JOB_DIR/ckpt/model.bin"
head -c 3000000 /dev/urandom >"$BB_JOB_DIR/ckpt/sub/rand.bin"
echo "checkpoint of job $SLURM_JOB_ID" >"$BB_JOB_DIR/ckpt/sub/note.txt"
(cd "$BB_JOB_DIR/ckpt" && find . -type f | LC_ALL=C sort | xargs -r sha256sum) >$o.ckpt.sums
EOF
	job_tail A
} >"$J/A.sh"
submit A
if [ -z "$jid" ]; then
	bad "A: sbatch accepts the job: rc=$rc: $out"
else
	A=$jid
	stA=$(wait_done "$A" 90)
	snap_job "$A" A
	eq "A: the job completes" "$stA" COMPLETED
	[ "$stA" = COMPLETED ] || show_job_failure A "$A"
	contains "A: the batch script ran to its end" "$J/A.out" job-script-done
	eq "A: status at the script's start: every file staged (state)" \
		"$(jget "$J/A.status0.json" 'j["state"]')" complete
	eq "A: status at the script's start: files_staged == files_total" \
		"$(jget "$J/A.status0.json" 'j["files_staged"] == j["files_total"] and j["files_total"] > 0')" True
	nA=$(( $(wc -l <"$J/set.sums") + 2 ))
	eq "A: status: files_total is every file of the 3 stage_in lines" \
		"$(jget "$J/A.status0.json" 'j["files_total"]')" "$nA"
	waited=$(secs "$t_submit" "$(cat "$J/A.start" 2>/dev/null || echo 0)")
	check "A: the script started after the slow file (4 MB at 1 MB/s) was staged (after $waited s)" \
		awk -v w="$waited" 'BEGIN { exit !(w >= 3.5) }'
	contains "A: BB_JOB_DIR in the batch script's environment" "$J/A.env" "BB_JOB_DIR=$BBCACHE_NVME/job.$A"
	contains "A: LD_PRELOAD is the interposer" "$J/A.env" "LD_PRELOAD=$BBCACHE_PRELOAD"
	check "A: the interposer is mapped in the script's programs" grep -qx '[1-9][0-9]*' "$J/A.maps"
	check "A: no AWS secret in the job's environment" sh -c "! grep -q AWS_SECRET '$J/A.env'"
	if cmp -s "$J/set.sums" "$J/A.set.sums"; then
		ok "A: every byte of the S3 directory via the interposer equals the origin's ($(wc -l <"$J/set.sums") files)"
	else
		bad "A: the S3 directory via the interposer differs from the origin:"
		diff "$J/set.sums" "$J/A.set.sums" 2>&1 | head -n 10 | sed 's/^/#   /'
		sed 's/^/#   /' "$J/A.set.err" 2>/dev/null | head -n 5
	fi
	eq "A: the HTTP file (cat | sha256sum)" "$(cut -d' ' -f1 "$J/A.blob.sum" 2>/dev/null)" \
		"$(sha256sum <"$T/www/blob.bin" | cut -d' ' -f1)"
	eq "A: the slow HTTP file (sha256sum <)" "$(cut -d' ' -f1 "$J/A.slow.sum" 2>/dev/null)" \
		"$(sha256sum <"$T/www/slow/slowfile.bin" | cut -d' ' -f1)"
	blob_sum=$(sha256sum <"$T/www/blob.bin" | cut -d' ' -f1)
	want_mpi="dir=$BBCACHE_NVME/job.$A preload=$BBCACHE_PRELOAD $blob_sum maps="
	if [ "$(grep -F -- "$want_mpi" "$J/A.mpi" 2>/dev/null | grep -c 'maps=[1-9]')" = 2 ] &&
		grep -q '^rank 0 ' "$J/A.mpi" && grep -q '^rank 1 ' "$J/A.mpi"; then
		ok "A: both mpirun ranks have BB_JOB_DIR and the interposer, and read the blob's bytes"
	else
		bad "A: both mpirun ranks have BB_JOB_DIR and the interposer, and read the blob's bytes (want '$want_mpi'):"
		sed 's/^/#   /' "$J/A.mpi" 2>/dev/null | tail -n 10
	fi
	if grep -q DATALOADER-OK "$J/A.set.dl" 2>/dev/null; then
		ok "A: the PyTorch DataLoader reads the origin's bytes: $(grep '^dataloader:' "$J/A.set.dl")"
	else
		bad "A: the PyTorch DataLoader reads the origin's bytes:"
		sed 's/^/#   /' "$J/A.set.dl" 2>/dev/null | tail -n 15
	fi
	# stage_out: s3://runs/ID/ holds what the job wrote in $BB_JOB_DIR/ckpt
	mkdir -p "$T/runsA"
	for i in $(seq 1 30); do
		s3 s3 sync --only-show-errors "s3://runs/$A/" "$T/runsA" >/dev/null 2>&1
		[ -f "$T/runsA/sub/note.txt" ] && break
		sleep 1
	done
	if [ -s "$J/A.ckpt.sums" ] && [ "$(bb_sha_tree "$T/runsA")" = "$(cat "$J/A.ckpt.sums")" ]; then
		ok "A: stage_out: s3://runs/$A/ equals the job's ckpt ($(wc -l <"$J/A.ckpt.sums") files)"
	else
		bad "A: stage_out: s3://runs/$A/ equals the job's ckpt"
		echo "#   job's ckpt:"; sed 's/^/#     /' "$J/A.ckpt.sums" 2>/dev/null
		echo "#   in s3://runs/$A/:"; bb_sha_tree "$T/runsA" | sed 's/^/#     /'
	fi
	eq "A: stage_out: model.bin is the staged blob's bytes" \
		"$(sha256sum <"$T/runsA/model.bin" 2>/dev/null | cut -d' ' -f1)" "$(sha256sum <"$T/www/blob.bin" | cut -d' ' -f1)"
	if gone_within 20 "$A"; then
		ok "A: after the job nothing is left (NVMe dir, /dev/shm, agent, controller state)"
	else
		bad "A: after the job nothing is left:$left"
	fi
fi

# ---------------------------------------------------------------- job B
echo "# B: mode=async: the script starts while a slow HTTP directory stages"
{
	echo '#!/bin/bash'
	echo '#SBATCH -t 3'
	echo '#SBATCH -J bbB'
	echo "#BB stage_in source=$SLOW_URL/aset/ destination=\$BB_JOB_DIR/aset type=directory mode=async"
	echo '#BB cache shm=256MiB'
	job_body B aset
	job_tail B
} >"$J/B.sh"
submit B
if [ -z "$jid" ]; then
	bad "B: sbatch accepts the job: rc=$rc: $out"
else
	B=$jid
	stB=$(wait_done "$B" 90)
	snap_job "$B" B
	eq "B: the job completes" "$stB" COMPLETED
	[ "$stB" = COMPLETED ] || show_job_failure B "$B"
	contains "B: the batch script ran to its end" "$J/B.out" job-script-done
	eq "B: status at the script's start: still staging" "$(jget "$J/B.status0.json" 'j["state"]')" staging
	eq "B: status at the script's start: not every file staged" \
		"$(jget "$J/B.status0.json" 'j["files_staged"] < j["files_total"]')" True
	eq "B: status: mode async" "$(jget "$J/B.status0.json" 'j["mode"]')" async
	started=$(secs "$t_submit" "$(cat "$J/B.start" 2>/dev/null || echo 0)")
	check "B: the script started before the 8 MiB files could be staged at 1 MB/s (after $started s)" \
		awk -v w="$started" 'BEGIN { exit !(w > 0 && w < 8) }'
	if cmp -s "$J/aset.sums" "$J/B.aset.sums"; then
		ok "B: every byte of the HTTP directory via the interposer equals the origin's ($(wc -l <"$J/aset.sums") files)"
	else
		bad "B: the HTTP directory via the interposer differs from the origin:"
		diff "$J/aset.sums" "$J/B.aset.sums" 2>&1 | head -n 10 | sed 's/^/#   /'
		sed 's/^/#   /' "$J/B.aset.err" 2>/dev/null | head -n 5
	fi
	if grep -q DATALOADER-OK "$J/B.aset.dl" 2>/dev/null; then
		ok "B: the PyTorch DataLoader reads the origin's bytes: $(grep '^dataloader:' "$J/B.aset.dl")"
	else
		bad "B: the PyTorch DataLoader reads the origin's bytes:"
		sed 's/^/#   /' "$J/B.aset.dl" 2>/dev/null | tail -n 15
	fi
	check "B: the agent served reads before staging ended (misses_served $(jget "$J/B.status1.json" 'j["misses_served"]'))" \
		test "$(jget "$J/B.status1.json" 'j["misses_served"]')" -gt 0 2>/dev/null
	if gone_within 20 "$B"; then
		ok "B: after the job nothing is left"
	else
		bad "B: after the job nothing is left:$left"
	fi
fi

# ---------------------------------------------------------------- job C
echo "# C: data_in fails (a missing bucket): held with our reason"
printf '%s\n' '#!/bin/sh' '#SBATCH -t 1' \
	'#BB stage_in source=s3://bbtest-missing/data/ destination=$BB_JOB_DIR/data type=directory mode=wait' \
	'echo must-not-run' >"$J/C.sh"
submit C
if [ -z "$jid" ]; then
	bad "C: sbatch accepts the job (data_in fails later): rc=$rc: $out"
else
	C=$jid
	reason=
	for i in $(seq 1 200); do
		reason=$(scontrol show job "$C" 2>/dev/null | grep -o 'Reason=.*' | head -n 1)
		printf '%s' "$reason" | grep -q bbtest-missing && break
		sleep 0.1
	done
	snap_job "$C" C
	rtext=$(printf '%s' "$reason" | tr '_' ' ')
	eq "C: the job stays PENDING" "$(job_field "$C" JobState)" PENDING
	eq "C: the job is held (Priority=0)" "$(job_field "$C" Priority)" 0
	if printf '%s' "$rtext" | grep -q 'bbtest-missing' &&
		printf '%s' "$rtext" | grep -qiE 'no such bucket|NoSuchBucket|does not exist|not found|404'; then
		ok "C: scontrol show job gives the reason: $(printf '%s' "$reason" | cut -c1-200)"
	else
		bad "C: scontrol show job names the missing bucket and why: '$reason'"
		show_job_failure C "$C"
	fi
	check "C: the job never ran" sh -c "! grep -q must-not-run '$J/C.out' 2>/dev/null"
	timeout 10 scancel "$C"
	if gone_within 20 "$C"; then
		ok "C: scancel of the held job leaves nothing behind"
	else
		bad "C: scancel of the held job leaves nothing behind:$left"
	fi
fi

# ---------------------------------------------------------------- job D
echo "# D: scancel while staging; a second user meanwhile"
{
	echo '#!/bin/sh'
	echo '#SBATCH -t 3'
	echo '#SBATCH -J bbD'
	echo "#BB stage_in source=$SLOW_URL/stall/ destination=\$BB_JOB_DIR/stall type=directory mode=wait"
	echo '#BB cache shm=64MiB'
	echo 'echo script-started; sleep 100'
} >"$J/D.sh"
submit D
if [ -z "$jid" ]; then
	bad "D: sbatch accepts the job: rc=$rc: $out"
else
	D=$jid
	dd=$BBCACHE_NVME/job.$D
	agent=
	for i in $(seq 1 300); do
		if [ "$(job_field "$D" JobState)" = RUNNING ] && [ -S "$dd/.bbcache/agent.sock" ] &&
			[ -e "/dev/shm/bbcache.$D" ]; then
			for p in $(my_procs); do
				grep -q '^bbcached' "/proc/$p/comm" 2>/dev/null && agent=$p
			done
			[ -n "$agent" ] && break
		fi
		held "$D" && break
		sleep 0.1
	done
	if [ -n "$agent" ]; then
		ok "D: the job runs, its agent (pid $agent) stages into $dd"
	else
		bad "D: the job runs with an agent, socket and segment within 30 s (state $(job_field "$D" JobState))"
		show_job_failure D "$D"
		ls -la "$dd" "$dd/.bbcache" 2>&1 | sed 's/^/#   /'
	fi
	snap_job "$D" D
	[ -n "$agent" ] && tr '\0' '\n' <"/proc/$agent/environ" >"$SNAP/D/agent.environ" 2>/dev/null
	if [ -n "$agent" ]; then
		st=$(timeout 10 runuser -u "$U" -- "$BBCACHE_BIN" status --json --job-dir "$dd" 2>&1)
		eq "D: still staging when cancelled" "$(printf '%s' "$st" | "$BB_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null)" staging
		check "D: the job's script has not started (mode=wait)" sh -c "! grep -q script-started '$J/D.out' 2>/dev/null"
		eq "D: \$BB_JOB_DIR is 0700 $U" "$(stat -c '%a %U' "$dd")" "700 $U"
		eq "D: the socket is 0600 $U" "$(stat -c '%a %U' "$dd/.bbcache/agent.sock")" "600 $U"
		eq "D: the shm segment is 0600 $U" "$(stat -c '%a %U' "/dev/shm/bbcache.$D")" "600 $U"
		# Each probe: the owner succeeds (so the probe can fail), the second user does not.
		probe() { # WHAT CMD...
			local what=$1 r1 r2
			shift
			timeout 10 runuser -u "$U" -- "$@" >/dev/null 2>&1
			r1=$?
			timeout 10 runuser -u "$U2" -- "$@" >"$T/probe.out" 2>&1
			r2=$?
			if [ $r1 = 0 ] && [ $r2 != 0 ]; then
				ok "D: $U2 cannot $what ($(head -c 100 "$T/probe.out" | tr '\n' ' '))"
			else
				bad "D: $U2 cannot $what (rc owner $r1, rc $U2 $r2: $(head -c 200 "$T/probe.out"))"
			fi
		}
		probe "list the cache dir" ls "$dd"
		probe "read a file of the cache dir" cat "$dd/.bbcache/plan"
		probe "connect to the agent's socket" "$BB_PYTHON" -c \
			'import socket, sys; s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.connect(sys.argv[1])' \
			"$dd/.bbcache/agent.sock"
		probe "ask the agent for its status" "$BBCACHE_BIN" status --job-dir "$dd"
		probe "open the shm segment" "$BB_PYTHON" -c 'open(__import__("sys").argv[1], "rb").read(16)' \
			"/dev/shm/bbcache.$D"
		# scontrol show bbstat (burst_buffer.lua get_status): the job, its
		# user, its live progress on this node; with the job id, that job only.
		timeout 20 scontrol show bbstat >"$T/bbstat.all" 2>&1
		contains "D: scontrol show bbstat: the job, its user, its progress here" "$T/bbstat.all" "$D"
		check "D: ... the line says who and how far" sh -c \
			"grep '^$D ' '$T/bbstat.all' | grep -q ' $U .*listed .*here: staging'"
		timeout 20 scontrol show bbstat "$D" >"$T/bbstat.one" 2>&1
		eq "D: scontrol show bbstat $D: that job's line only" \
			"$(grep -c '^[0-9]' "$T/bbstat.one") $(grep -c "^$D " "$T/bbstat.one")" "1 1"
		timeout 20 scontrol show bbstat 1 >"$T/bbstat.none" 2>&1
		eq "D: scontrol show bbstat 1 (no such job): no job line" "$(grep -c '^[0-9]' "$T/bbstat.none")" 0
	fi
	timeout 10 scancel "$D"
	t_cancel=$(now)
	if gone_within 30 "$D"; then
		ok "D: scancel during staging leaves nothing behind (after $(secs "$t_cancel" "$(now)") s)"
	else
		bad "D: scancel during staging leaves nothing behind (after 30 s):$left"
		show_job_failure D "$D"
	fi
	stD=$(wait_done "$D" 10)
	eq "D: the job is CANCELLED" "$stD" CANCELLED
fi

# ---------------------------------------------------------------- job E
echo "# E: mode=wait staging fails on the node: the script does not run, nothing is staged out"
# The listing passes (data_in succeeds); the agent's GET of b-bad.bin gets
# 403, after a-ok.bin is staged.  The stage_out source is the staged
# directory itself: without the check, stage-out would copy a-ok.bin out.
{
	echo '#!/bin/sh'
	echo '#SBATCH -t 1'
	echo "#BB stage_in source=$SLOW_URL/gone/ destination=\$BB_JOB_DIR/gone type=directory mode=wait"
	echo '#BB stage_out source=$BB_JOB_DIR/gone destination=s3://runs/E%j/ type=directory'
	echo 'echo must-not-run'
} >"$J/E.sh"
submit E
if [ -z "$jid" ]; then
	bad "E: sbatch accepts the job: rc=$rc: $out"
else
	E=$jid
	stE=$(wait_done "$E" 60)
	snap_job "$E" E
	eq "E: the job fails" "$stE" FAILED
	check "E: the batch script never ran" sh -c "! grep -q must-not-run '$J/E.out' 2>/dev/null"
	contains "E: the job's output says why (the 403 of b-bad.bin)" "$J/E.out" b-bad.bin
	want="job $E: not staged out: the batch script did not run"
	for i in $(seq 1 100); do
		grep -qF "$want" "$SLURM_TOP/log/slurmctld.log" 2>/dev/null && break
		sleep 0.1
	done
	if grep -F "$want" "$SLURM_TOP/log/slurmctld.log" 2>/dev/null | grep -q 'b-bad.bin'; then
		ok "E: data_out says why nothing was staged out: $(grep -F "$want" "$SLURM_TOP/log/slurmctld.log" | tail -n 1 | sed 's/.*not staged out/not staged out/' | cut -c1-160)"
	else
		bad "E: data_out says why nothing was staged out (slurmctld.log):"
		grep -F "job $E" "$SLURM_TOP/log/slurmctld.log" 2>/dev/null | tail -n 8 | sed 's/^/#   /'
	fi
	eq "E: nothing reached s3://runs/E$E/" \
		"$(s3 s3 ls --recursive "s3://runs/E$E/" 2>/dev/null | wc -l)" 0
	if gone_within 20 "$E"; then
		ok "E: after the job nothing is left"
	else
		bad "E: after the job nothing is left:$left"
	fi
fi

# ---------------------------------------------------------------- secrets
echo "# the S3 secret is nowhere but in the user's ~/.aws/credentials"
check "control: the secret is in $SLURM_TEST_HOME/.aws/credentials (0600 $U)" \
	sh -c "grep -qF '$secret' '$SLURM_TEST_HOME/.aws/credentials' && [ \"\$(stat -c '%a %U' '$SLURM_TEST_HOME/.aws/credentials')\" = '600 $U' ]"
: >"$T/records.txt"
for j in $ALLJOBS; do
	scontrol show job -d "$j" >>"$T/records.txt" 2>&1
done
scontrol show bbstat >>"$T/records.txt" 2>&1
scontrol show burst >>"$T/records.txt" 2>&1
squeue -a -t all -o %all >>"$T/records.txt" 2>&1
check "control: the job records were captured ($(grep -c '^JobId=' "$T/records.txt") jobs)" \
	grep -q "^JobId=${A:-none}" "$T/records.txt"
check "the secret is not in scontrol show job -d / show bbstat / show burst / squeue" \
	sh -c "! grep -qF '$secret' '$T/records.txt'"
jc=$SLURM_TOP/log/jobcomp.txt
check "control: the job completion records (jobcomp/filetxt) hold job A" grep -q "JobId=${A:-none} " "$jc"
check "the secret is not in the job completion records" sh -c "! grep -qF '$secret' '$jc'"
sacct_out=$(timeout 10 sacct -a -X -j "$(echo $ALLJOBS | tr ' ' ',')" -o JobID,JobName,State,Comment%200,SystemComment%200 2>&1)
if printf '%s' "$sacct_out" | grep -qi 'accounting storage is disabled\|not running a supported accounting_storage'; then
	echo "# sacct: accounting storage is disabled on this test cluster (no slurmdbd): nothing to look at"
else
	check "the secret is not in sacct" sh -c "! printf '%s' \"\$1\" | grep -qF '$secret'" _ "$sacct_out"
fi
# Every file but the credentials file itself (the user's home is in
# $SLURM_TOP), with a canary holding the secret: the scan must find it alone.
printf 'canary %s\n' "$secret" >"$SNAP/canary"
hits=$(find "$SLURM_TOP" "$SNAP" -type f ! -path "$SLURM_TEST_HOME/.aws/credentials" -print0 |
	xargs -0 -r grep -laF -- "$secret" 2>/dev/null)
nfiles=$(find "$SLURM_TOP" "$SNAP" -type f ! -path "$SLURM_TEST_HOME/.aws/credentials" | wc -l)
check "control: the scan finds the secret in a canary file" sh -c "printf '%s\n' \"\$1\" | grep -qxF '$SNAP/canary'" _ "$hits"
hits=$(printf '%s\n' "$hits" | grep -vxF "$SNAP/canary")
rm -f "$SNAP/canary"
check "control: the logs looked at include slurmctld.log, slurmd.log and bbcache logs ($nfiles files)" \
	sh -c "[ -s '$SLURM_TOP/log/slurmctld.log' ] && [ -s '$SLURM_TOP/log/slurmd.log' ] && ls '$SNAP'/*/*.log '$J'/*.bblogs/*.log >/dev/null 2>&1"
if [ -z "$hits" ]; then
	ok "the secret is in no Slurm log, spool or state file, no bbcache log/state, no job environment ($nfiles files)"
else
	bad "the secret is in:"
	printf '%s\n' "$hits" | sed 's/^/#   /'
fi

# ---------------------------------------------------------------- the end
t_jobs=$(now)
eq "the node is idle, not drained (no prolog or epilog failed)" \
	"$(sinfo -h -n "$SLURM_NODE" -o '%T' 2>&1 | head -n 1)" idle
[ "$(sinfo -h -n "$SLURM_NODE" -o '%T' 2>&1 | head -n 1)" = idle ] ||
	sinfo -R 2>&1 | sed 's/^/#   /'
leftp=$(my_procs)
if [ -z "$leftp" ]; then ok "no process of this run is left"; else bad "no process of this run is left: $(ps_of $leftp)"; fi
top_dir=$SLURM_TOP
cleanup_pids=$(cat "$SLURM_TOP"/run/*.pid 2>/dev/null)
shm_left=""
for j in $ALLJOBS; do [ -e "/dev/shm/bbcache.$j" ] && shm_left="$shm_left /dev/shm/bbcache.$j"; done
eq "nothing of these jobs in /dev/shm" "$shm_left" ""
slurm_env_stop
left=""
for p in $cleanup_pids; do kill -0 "$p" 2>/dev/null && left="$left pid $p"; done
[ -d "$top_dir" ] && left="$left $top_dir"
id "$U" >/dev/null 2>&1 && left="$left user:$U"
id "$U2" >/dev/null 2>&1 && left="$left user:$U2"
eq "Slurm stopped; its directory, the test users and their credentials removed" "$left" ""
echo "# origins $(secs "$t_start" "$t_origins") s, jobs $(secs "$t_origins" "$t_jobs") s, stop $(secs "$t_jobs" "$(now)") s"
echo "1..$((passed + failed))"
bb_checks_done
