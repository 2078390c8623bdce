#!/bin/sh
# Replay the seed corpus through each fuzz target, compiled with the normal
# compiler (and under --enable-sanitizers with ASan+UBSan): a crash, an
# abort() of a target's invariant checks or a sanitizer report fails `make check`.
set -eu
srcdir=${srcdir:-.}
for t in directive conf manifest s3xml proto ns; do
	./replay_$t "$srcdir/corpus/$t"
done
