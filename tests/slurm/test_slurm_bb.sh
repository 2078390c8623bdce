#!/bin/bash
# #BB directives on a real one-node Slurm (tests/slurm/slurm-env.sh with the
# full bbcache setup, every path under its private directory): a job with a
# valid `#BB stage_in` line is accepted by sbatch; jobs with bad directives
# are refused by sbatch with a message naming the problem
# (plugin/burst_buffer.lua's job_process -> `bbcache check-script`).
# Staging itself: test_slurm_job.sh.  Root, Slurm and munge installed.
#
#   tests/slurm/test_slurm_bb.sh BUILD_DIR      (BUILD_DIR/agent/bbcache)
set -u
here=$(cd "$(dirname "$0")" && pwd)
b=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
export BBCACHE_BIN=$b/agent/bbcache
[ -x "$BBCACHE_BIN" ] || { echo "no $BBCACHE_BIN: build first" >&2; exit 1; }
# The full setup (state_dir and nvme_root under $SLURM_TOP); an S3 endpoint
# that refuses connections (the discard port): nothing here touches a network.
SLURM_ENV_BBCACHE=$b
SLURM_ENV_S3_ENDPOINT=http://127.0.0.1:9

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
t0=$(date +%s.%N)
. "$here/slurm-env.sh"
t1=$(date +%s.%N)
echo "# slurm up in $(secs "$t0" "$t1") s (top $SLURM_TOP, user $SLURM_TEST_USER)"

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/#   /'; }

J=$SLURM_TOP/jobs
# submit NAME BODY...: writes the script, runs sbatch as the test user;
# sets $out (sbatch's stdout+stderr) and $rc.
submit() {
	local name=$1
	shift
	printf '%s\n' '#!/bin/sh' '#SBATCH -t 2' "$@" >"$J/$name.sh"
	chmod 0644 "$J/$name.sh"
	out=$(cd "$J" && timeout 30 runuser -u "$SLURM_TEST_USER" -- env SLURM_CONF="$SLURM_CONF" \
		sbatch --parsable -o "$J/$name.out" -D "$J" "$J/$name.sh" 2>&1)
	rc=$?
}
# wait_done ID: waits (30 s) until the job leaves PENDING/RUNNING etc.;
# prints its final state.
wait_done() {
	local i st
	for i in $(seq 1 300); do
		st=$(scontrol -o show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
		case $st in
		COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
			echo "$st"
			return
			;;
		esac
		sleep 0.1
	done
	echo "${st:-UNKNOWN} (after 30 s)"
}

# 1-2: a job without #BB (the cluster works), then a valid #BB job is
# accepted (its data_in fails: no such origin here; it is cancelled).
submit plain 'echo plain-job-ran'
if [ $rc = 0 ] && [ "$(wait_done "$out")" = COMPLETED ] && grep -q plain-job-ran "$J/plain.out"; then
	ok "a plain job runs"
else
	notok "a plain job runs" "rc=$rc out=$out"
fi

submit valid \
	'#BB stage_in source=s3://datasets/imgs/ destination=$BB_JOB_DIR/data type=directory mode=async' \
	'#BB cache shm=1GiB' \
	'echo bb-job-ran'
if [ $rc = 0 ] && [ -n "$out" ] && [ -z "${out//[0-9]/}" ]; then
	bbline=$(scontrol -o show job "$out" | grep -o 'BurstBuffer=.*' | cut -c1-120)
	ok "a valid #BB stage_in job is accepted ($bbline)"
	timeout 10 scancel "$out"
	wait_done "$out" >/dev/null
else
	notok "a valid #BB stage_in job is accepted" "rc=$rc: $out"
fi

# 3-: each bad directive refused at submit time, the message naming it.
refused() { # NAME EXPECTED-SUBSTRING DIRECTIVE-LINE
	submit "$1" "$3" 'echo must-not-run'
	if [ $rc != 0 ] && printf '%s' "$out" | grep -qF -- "$2" &&
		printf '%s' "$out" | grep -qF -- "line 3:"; then
		ok "refused: $1 ($(printf '%s' "$out" | tr '\n' ' ' | cut -c1-160))"
	else
		notok "refused: $1, naming '$2'" "rc=$rc: $out"
	fi
}
refused outside-job-dir 'is outside $BB_JOB_DIR' \
	'#BB stage_in source=s3://datasets/x/ destination=/etc/x type=directory'
refused dotdot "has a '..' component" \
	'#BB stage_in source=s3://datasets/x/ destination=$BB_JOB_DIR/../x type=directory'
refused unknown-key "unknown key 'colour'" \
	'#BB stage_in source=s3://datasets/x/ destination=$BB_JOB_DIR/x type=directory colour=red'
refused unknown-directive "unknown directive 'frobnicate'" \
	'#BB frobnicate x=1'
refused bad-scheme "unsupported scheme 'ftp'" \
	'#BB stage_in source=ftp://host/x destination=$BB_JOB_DIR/x type=file'
refused bad-size 'shm=lots: bad size' \
	'#BB cache shm=lots'
refused bad-mode 'mode=soon: expected async or wait' \
	'#BB stage_in source=s3://datasets/x/ destination=$BB_JOB_DIR/x type=directory mode=soon'

# The example bbcache.conf admins get (contrib/slurm/) parses, and its
# allowed_origins and limits are applied.
ex=$here/../../contrib/slurm/bbcache.conf.example
printf '%s\n' '#!/bin/sh' '#BB stage_in source=s3://datasets/x/ destination=$BB_JOB_DIR/x type=directory' \
	'#BB cache shm=8GiB' >"$J/ex-ok.sh"
printf '%s\n' '#!/bin/sh' '#BB stage_in source=s3://elsewhere/x/ destination=$BB_JOB_DIR/x type=directory' >"$J/ex-bad.sh"
if exo=$("$BBCACHE_BIN" check-script --conf "$ex" --job-id 1 --user nobody "$J/ex-ok.sh" 2>&1) &&
	exb=$("$BBCACHE_BIN" check-script --conf "$ex" --job-id 1 --user nobody "$J/ex-bad.sh" 2>&1; echo "rc=$?") &&
	printf '%s' "$exb" | grep -q 'allowed_origins' && ! printf '%s' "$exb" | grep -q 'rc=0$'; then
	ok "contrib/slurm/bbcache.conf.example parses and restricts origins"
else
	notok "contrib/slurm/bbcache.conf.example parses and restricts origins" "$exo
$exb"
fi

if [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
	notok "no job left in the queue" "$(squeue 2>&1)"
else
	ok "no job left in the queue"
fi

t2=$(date +%s.%N)
top=$SLURM_TOP
pids=$(cat "$top"/run/*.pid 2>/dev/null)
slurm_env_stop
t3=$(date +%s.%N)
left=""
for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left pid $p"; done
[ -d "$top" ] && left="$left $top"
if [ -z "$left" ]; then ok "stopped, nothing left"; else notok "stopped, nothing left" "$left"; fi
echo "# tests took $(secs "$t1" "$t2") s; stop took $(secs "$t2" "$t3") s"
echo "1..$n"
[ $failed = 0 ]
