#!/bin/sh
# Run the node-cache benchmarks and print each figure as a same-run ratio;
# then instruction counts per 4 KiB hit under callgrind (repeatable on a
# noisy machine), against a bare 4 KiB memcpy counted the same way.
#
#   bench/run-bench.sh [BUILD_DIR]      (default: _build/ci)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
b=${1:-$top/_build/ci}
bin=$b/bench/bench_shmcache
[ -x "$bin" ] || { echo "run-bench: build first ($bin missing)" >&2; exit 1; }
echo "bench_shmcache on $(nproc) cores, $(uname -r)"
"$bin" all
if command -v valgrind >/dev/null 2>&1; then
	n=20000
	tmp=$(mktemp -d)
	for mode in hit copy; do
		fn=bbc_read; [ $mode = copy ] && fn=bare_copy
		valgrind --tool=callgrind --callgrind-out-file="$tmp/$mode.out" \
			--toggle-collect="$fn" "$bin" $mode $n >/dev/null 2>&1
		ir=$(grep -E '^(summary|totals):' "$tmp/$mode.out" | head -1 | awk '{print $2}')
		eval "ir_$mode=$ir"
	done
	awk -v h="$ir_hit" -v c="$ir_copy" -v n=$n 'BEGIN {
		printf "callgrind 4 KiB: %.0f instructions per hit (bbc_read) | %.0f per bare memcpy | overhead %.0f instructions (%.1f%%)\n",
			h / n, c / n, (h - c) / n, 100 * (h - c) / c }'
	rm -rf "$tmp"
else
	echo "valgrind not found: no instruction counts"
fi
