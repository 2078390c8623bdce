# Shared by the stage tests: lib.sh, the bbcache binary, and tap-like checks.
# Sourced; expects $0 in tests/origins/.
set -u
here=$(cd "$(dirname "$0")" && pwd)
BB_ORIGINS_DIR=$here
. "$here/lib.sh"
trap bb_stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The bbcache binary: $BBCACHE (make check sets it), else the build next door.
BBCACHE=${BBCACHE:-}
if [ -z "$BBCACHE" ]; then
	for b in "$here/../../agent/bbcache" "$here/../../_build/ci/agent/bbcache"; do
		[ -x "$b" ] && BBCACHE=$b && break
	done
fi
[ -x "${BBCACHE:-}" ] || bb_die "bbcache binary not found: set BBCACHE"

finish() { bb_checks_done; }
# bbc ARGS...: bbcache with its output in $T/out.log, exit code in $rc
bbc() {
	rc=0
	"$BBCACHE" "$@" >"$T/out.log" 2>&1 || rc=$?
}
same_tree() { [ "$(bb_sha_tree "$1")" = "$(bb_sha_tree "$2")" ]; }
# No temporary or partial file anywhere under DIR.
no_tmp() { [ -z "$(find "$1" -name '*.bbtmp' 2>/dev/null | head -n 1)" ]; }
# Bytes the test may make large: 2 GiB by default, smaller for quick runs.
big_size() { echo "${BBCACHE_BIG_FILE:-2G}"; }

T=$(bb_tmpdir)
export HOME="$T/home"
mkdir -p "$HOME"
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
