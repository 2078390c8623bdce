#!/bin/sh
# The README's first command after install-deps: build bbcache out of tree
# and run the main job.  For now that is the node-cache demo (a generated
# dataset loaded into the shared-memory cache and read back, with a
# verdict); the Slurm integration turns it into a real #BB job.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ -x configure ] || ./autogen.sh >/dev/null 2>&1
mkdir -p _build/demo
cd _build/demo
[ -f Makefile ] || "$top/configure" >configure.out 2>&1 || { cat configure.out; exit 1; }
make -j"$(nproc 2>/dev/null || echo 2)" >make.out 2>&1 || { cat make.out; exit 1; }
exec ./agent/bbcache demo "$@"
