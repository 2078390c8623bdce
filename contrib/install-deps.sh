#!/bin/sh
# Install every Debian 12 package bbcache needs to build and to run its whole
# test suite. Idempotent: packages already present are left alone, and
# apt-get is not called at all when nothing is missing.
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

missing=""
for p in $BUILD $TEST; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: run this script as root to install them" >&2
    exit 1
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing
