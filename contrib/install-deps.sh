#!/bin/sh
# Install every Debian 12 package bbcache needs to build and to run its whole
# test suite, plus the origin servers and peer clients of the origin tests and
# benchmarks (tests/origins/, bench/). Idempotent and quick: packages already
# present are left alone, apt-get is not called at all when nothing is
# missing, and npm is not called when s3rver is already installed.
#
#   contrib/install-deps.sh          # as root
#
set -eu

# Build tool chain and libraries named by configure.ac.
BUILD="build-essential autoconf automake libtool pkg-config
       libnuma-dev libcunit1-dev libcurl4-openssl-dev libssl-dev libexpat1-dev
       libpmix-dev libopenmpi-dev openmpi-bin libslurm-dev
       clang libclang-rt-14-dev"
# What the test suite and benchmarks run: sanitizers come with clang,
# valgrind for callgrind counts, python3 for the test helpers, util-linux
# for mount/unshare in the /dev/shm-full tests.
TEST="valgrind python3 util-linux procps strace"
# The interposer tests and benchmarks (tests/preload/, bench/) run real
# clients: Python with PIL, and a PyTorch DataLoader over torchvision's
# ImageFolder (Debian's packages; run them with /usr/bin/python3).
INTERPOSER="python3-pil python3-numpy python3-torch python3-torchvision"
# Origin tests and benchmarks (tests/origins/, docs/testing.md): nginx as the
# HTTP origin, awscli (the peer S3 client; it also ships the botocore that
# tests/origins/faultsrv.py --sigv4-check verifies signatures with), rclone
# and curl as peer clients, ca-certificates for npm, openssl for the HTTPS
# test's certificate.
ORIGINS="nginx-light awscli rclone curl ca-certificates openssl"
# The Slurm integration tests (tests/slurm/): a private one-node Slurm
# (munged + slurmctld + slurmd on 127.0.0.1) with burst_buffer/lua (Debian's
# burst_buffer_lua.so, in slurm-wlm-basic-plugins, embeds Lua 5.1; lua5.3 is
# the interpreter the reference setup names). libslurm-dev (spank.h, for
# the SPANK plugin) is in BUILD.
SLURM="slurm-wlm slurmctld slurmd slurm-client munge lua5.3"

# s3rver, the S3 test server, from the npm registry, at the fixed place
# tests/origins/lib.sh looks for it. 3.7.1 is the last 3.x and runs on
# Node 18 and 20 (with NODE_OPTIONS=--openssl-legacy-provider on 20).
S3RVER_PREFIX=/opt/bbcache-test
S3RVER_VERSION=3.7.1

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=""
for p in $BUILD $TEST $INTERPOSER $ORIGINS $SLURM; do
    case $p in
    nginx-light)
        # Any of Debian's nginx flavours will do.
        if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then continue; fi ;;
    esac
    installed "$p" || missing="$missing $p"
done
# Node.js and npm: a machine may carry another build of Node.js (one that
# bundles npm and conflicts with Debian's npm package); use it when present.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

s3rver_ok() {
    [ -f "$S3RVER_PREFIX/node_modules/s3rver/bin/s3rver.js" ] &&
        grep -q "\"version\": *\"$S3RVER_VERSION\"" "$S3RVER_PREFIX/node_modules/s3rver/package.json" 2>/dev/null
}

if [ -z "$missing" ] && s3rver_ok; then
    echo "install-deps: all packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    [ -n "$missing" ] && echo "install-deps: missing packages:$missing" >&2
    s3rver_ok || echo "install-deps: missing s3rver@$S3RVER_VERSION in $S3RVER_PREFIX" >&2
    echo "install-deps: run this script as root to install them" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    # Wait for a dpkg lock held by another apt-get rather than failing.
    apt-get -o DPkg::Lock::Timeout=600 update
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends $missing
fi

if ! s3rver_ok; then
    echo "install-deps: installing s3rver@$S3RVER_VERSION into $S3RVER_PREFIX"
    mkdir -p "$S3RVER_PREFIX"
    npm install --prefix "$S3RVER_PREFIX" --no-audit --no-fund --loglevel=error \
        "s3rver@$S3RVER_VERSION"
    s3rver_ok || { echo "install-deps: s3rver did not install" >&2; exit 1; }
fi
echo "install-deps: done"
