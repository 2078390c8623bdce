#!/bin/bash
# The main job (README, first command), on an embedded default: a local S3
# server (s3rver) holding a small generated image dataset, a private one-node
# Slurm (munged + slurmctld + slurmd on 127.0.0.1, tests/slurm/slurm-env.sh)
# with bbcache's burst_buffer.lua and SPANK plugin, and an sbatch script
# whose #BB lines stage the dataset while an unmodified PyTorch training loop
# reads it through the interposer.  The same loop also reads the data
# straight from S3, for comparison.  Prints what was staged, the per-tier hit
# rates, the epoch times of both, and PASS (every byte read equals the
# origin's, the checkpoint landed in S3, nothing left running or behind) or
# FAIL.  Root (it starts Slurm); the job runs as a test user that
# slurm-env.sh creates for the run (and removes).
#
#   contrib/demo-job.sh BUILD_DIR
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
b=$(cd "$1" && pwd)
PY=/usr/bin/python3
EPOCHS=${BBCACHE_DEMO_EPOCHS:-3}
. "$top/tests/origins/lib.sh"
fail() {
	echo "demo: FAIL: $*" >&2
	[ -n "${SLURM_TOP:-}" ] && [ -d "$SLURM_TOP/log" ] && slurm_env_logs
	exit 1
}
cleanup() {
	[ -n "${SLURM_TOP:-}" ] && slurm_env_stop
	bb_stop_all
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tmp=$(bb_tmpdir)

echo "demo: a local S3 server and a generated dataset (8 classes x 48 PNG images)"
bb_start_s3rver "$tmp/s3" >/dev/null
"$PY" - "$tmp/imgs" <<'PYEOF'
import os, random, sys
from PIL import Image
random.seed(1)
for c in range(8):
    d = f"{sys.argv[1]}/class{c}"
    os.makedirs(d, exist_ok=True)
    for i in range(48):
        im = Image.new("RGB", (32, 32), (32 * c, random.randrange(256), 255 - 32 * c))
        for _ in range(40):
            im.putpixel((random.randrange(32), random.randrange(32)), (255, 255, 255))
        im.save(f"{d}/img{i:03d}.png")
PYEOF
bb_s3 s3 mb s3://datasets >/dev/null
bb_s3 s3 mb s3://runs >/dev/null
bb_s3 s3 sync --only-show-errors "$tmp/imgs" s3://datasets/imgs/
(cd "$tmp/imgs" && find . -type f | sort | xargs sha256sum) >"$tmp/origin.sum"

echo "demo: a one-node Slurm with burst_buffer/lua and bbcache's SPANK plugin"
# The S3 keys go into the test user's ~/.aws/credentials only: not exported,
# so that no daemon started below has them in its environment.
SLURM_ENV_BBCACHE=$b SLURM_ENV_S3_ENDPOINT=$S3_ENDPOINT
SLURM_ENV_S3_KEY=$AWS_ACCESS_KEY_ID SLURM_ENV_S3_SECRET=$AWS_SECRET_ACCESS_KEY
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
. "$top/tests/slurm/slurm-env.sh"
trap cleanup EXIT
J=$SLURM_TOP/jobs
cp "$top/contrib/train_demo.py" "$J/train_demo.py"
chmod 0644 "$J/train_demo.py"
chmod 0777 "$J"
cat >"$J/main.sh" <<EOF
#!/bin/bash
#SBATCH -J bbcache-main -t 10 -o $J/main.out
#BB stage_in source=s3://datasets/imgs/ destination=\$BB_JOB_DIR/imgs type=directory mode=async
#BB stage_out source=\$BB_JOB_DIR/ckpt destination=s3://runs/%j/ type=directory
#BB cache shm=256MiB
set -e
echo "job \$SLURM_JOB_ID on \$(hostname): BB_JOB_DIR=\$BB_JOB_DIR"
echo "== through bbcache (staging while epoch 1 runs, reads through the interposer)"
$PY $J/train_demo.py \$BB_JOB_DIR/imgs $EPOCHS \$BB_JOB_DIR/ckpt
echo "== direct from S3 (every epoch GETs every image)"
$PY $J/train_demo.py s3://datasets/imgs/ $EPOCHS --endpoint $S3_ENDPOINT
echo "== every file, sha256 through the interposer"
(cd \$BB_JOB_DIR/imgs && find . -type f | sort | xargs sha256sum) >$J/job.sum
echo "== bbcache status"
$BBCACHE_BIN status --json >$J/status.json
$BBCACHE_BIN status
EOF
chmod 0644 "$J/main.sh"
echo "demo: sbatch (as $SLURM_TEST_USER):"
grep '^#BB' "$J/main.sh" | sed 's/^/demo:   /'
t0=$(date +%s.%N)
id=$(cd "$J" && runuser -u "$SLURM_TEST_USER" -- env SLURM_CONF="$SLURM_CONF" sbatch --parsable "$J/main.sh") ||
	fail "sbatch refused the job"
st=
for _ in $(seq 1 1800); do
	st=$(scontrol -o show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
	case $st in
	COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) break ;;
	PENDING) # held by a failed data_in: no use waiting
		scontrol -o show job "$id" | grep -q 'Reason=burst_buffer' && break ;;
	esac
	sleep 0.2
done
t1=$(date +%s.%N)
echo "demo: job $id: $st after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; its output:"
sed 's/^/  | /' "$J/main.out" 2>/dev/null || true
[ "$st" = COMPLETED ] || fail "job $id ended $st ($(scontrol -o show job "$id" | grep -o 'Reason=[^ ]*'))"

echo "demo: results"
cmp -s "$tmp/origin.sum" "$J/job.sum" || fail "bytes differ: diff $tmp/origin.sum $J/job.sum"
echo "demo:   $(wc -l <"$tmp/origin.sum") files read through the interposer, identical to the origin"
"$PY" - "$J/status.json" "$J/main.out" <<'PYEOF'
import json, re, sys
s = json.load(open(sys.argv[1]))
f = s["fetch"]
print(f"demo:   staged {s['files_staged']} of {s['files_total']} files, "
      f"{s['bytes_staged']} of {s['bytes_total']} bytes ({s['state']})")
print(f"demo:   shm hit rate {100 * s['shm_hit_rate']:.1f}% ({s['shm_hits']} hits, "
      f"{s['shm_misses']} misses); misses served from nvme {f['nvme']}, "
      f"origin {f['origin']}, disk {f['disk']}; errors {s['errors']}")
out = open(sys.argv[2]).read().split("== direct from S3")
cached = [float(x) for x in re.findall(r"epoch \d+: .* ([0-9.]+) s", out[0])]
direct = [float(x) for x in re.findall(r"epoch \d+: .* ([0-9.]+) s", out[1])]
if len(cached) != len(direct) or not cached:
    sys.exit("demo: FAIL: epoch times missing from the job's output")
for i, (d, c) in enumerate(zip(direct, cached)):
    print(f"demo:   epoch {i + 1}: direct from S3 {d:.2f} s, through bbcache {c:.2f} s "
          f"({d / c:.1f}x)")
PYEOF
bb_s3 s3 ls "s3://runs/$id/" | grep -q 'model.pt' || fail "the checkpoint is not in s3://runs/$id/"
echo "demo:   stage_out: s3://runs/$id/model.pt is in S3"
# Teardown and epilog run right after the job: give them a moment.
left=
for _ in $(seq 1 100); do
	left=$(find "$BBCACHE_NVME" "$BBCACHE_STATE" -mindepth 1 -maxdepth 1 2>/dev/null
		ls /dev/shm | grep "^bbcache\.$id" || true
		pgrep -u "$SLURM_TEST_USER" bbcached || true)
	[ -z "$left" ] && break
	sleep 0.1
done
[ -z "$left" ] || fail "left behind: $left"
echo "demo:   after the job: nothing in $BBCACHE_NVME, $BBCACHE_STATE, /dev/shm; no agent running"
echo "PASS"
