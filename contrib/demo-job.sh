#!/bin/sh
# The main job (README, first command), on an embedded default: a local S3
# server (s3rver) holding a small generated image dataset, staged into a job
# directory by `bbcache stage-in --async` (the agent bbcached prefetches it
# into node-local disk and the shared-memory cache while the job runs), and
# an unmodified PyTorch training loop reading it through the LD_PRELOAD
# interposer.  Ends with PASS (every byte read equals the origin's, the agent
# served the reads, nothing left in /dev/shm) or FAIL.
#
#   contrib/demo-job.sh BUILD_DIR
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
b=$(cd "$1" && pwd)
PY=/usr/bin/python3
bbcache=$b/agent/bbcache
so=$b/mpi-io/.libs/libbbcache_preload.so
. "$top/tests/origins/lib.sh"
job=$((700000 + $$ % 100000))
fail() { echo "demo: FAIL: $*" >&2; exit 1; }
cleanup() {
	[ -S "${jd:-/nonexistent}/.bbcache/agent.sock" ] && "$bbcache" stop --job-dir "$jd" >/dev/null 2>&1
	bb_stop_all
}
trap cleanup EXIT INT TERM
tmp=$(bb_tmpdir)

echo "demo: a local S3 server and a generated dataset (8 classes x 48 PNG images)"
bb_start_s3rver "$tmp/s3" >/dev/null
export AWS_ENDPOINT_URL=$S3_ENDPOINT
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
bb_s3 s3 sync --only-show-errors "$tmp/imgs" s3://datasets/imgs/
jd=$tmp/job
mkdir -p "$jd"

echo "demo: #BB stage_in source=s3://datasets/imgs/ destination=\$BB_JOB_DIR/imgs mode=async"
"$bbcache" stage-in --async --job "$job" --no-progress s3://datasets/imgs/ "$jd/imgs" ||
	fail "stage-in --async"
echo "demo: training at once, through $so"
BBCACHE_JOB_DIR=$jd LD_PRELOAD=$so "$PY" "$top/contrib/train_demo.py" "$jd/imgs" 3 ||
	fail "the training loop"
"$bbcache" status --job-dir "$jd" || fail "bbcache status"

echo "demo: every file read through the interposer vs the origin's bytes"
(cd "$tmp/imgs" && find . -type f | sort | xargs sha256sum) >"$tmp/origin.sum"
(cd "$jd/imgs" && BBCACHE_JOB_DIR=$jd LD_PRELOAD=$so sh -c 'find . -type f | sort | xargs sha256sum') \
	>"$tmp/job.sum"
cmp -s "$tmp/origin.sum" "$tmp/job.sum" || fail "bytes differ: diff $tmp/origin.sum $tmp/job.sum"
echo "demo: $(wc -l <"$tmp/origin.sum") files identical"

"$bbcache" stop --job-dir "$jd" >/dev/null || fail "bbcache stop"
[ ! -e "/dev/shm/bbcache.$job" ] || fail "/dev/shm/bbcache.$job left behind"
echo "demo: agent stopped, nothing left in /dev/shm"
echo "PASS"
