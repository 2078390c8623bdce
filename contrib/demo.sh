#!/bin/sh
# The README's first command after install-deps: build bbcache out of tree
# and run the main job (contrib/demo-job.sh): a generated dataset on a local
# S3 server, a one-node Slurm, and an sbatch script whose #BB lines stage the
# dataset while an unmodified PyTorch training loop reads it through the
# interposer, against the same loop reading S3 directly; with a verdict.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ -x configure ] || ./autogen.sh >/dev/null 2>&1
mkdir -p _build/demo
cd _build/demo
[ -f Makefile ] || "$top/configure" >configure.out 2>&1 || { cat configure.out; exit 1; }
make -j"$(nproc 2>/dev/null || echo 2)" >make.out 2>&1 || { cat make.out; exit 1; }
exec bash "$top/contrib/demo-job.sh" .
