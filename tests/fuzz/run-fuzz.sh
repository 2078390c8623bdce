#!/bin/sh
# Build each libFuzzer target with clang (ASan+UBSan) straight from the
# common/ sources and fuzz it for SECONDS (default 60).  The small targets
# (proto: a fixed 24-byte header and five ops; ns: a short line format) get
# at most SMALL_SECONDS (30) each, so they add at most a minute in all.
#
#   tests/fuzz/run-fuzz.sh [SECONDS]
#
# Environment: BUILD_DIR, a configured build directory whose config.h is used
# (default: the top of the source tree; if it has no config.h, a minimal one
# defining _GNU_SOURCE stands in, as AC_USE_SYSTEM_EXTENSIONS would);
# CLANG (default clang); FUZZ_TARGETS (default: all six); SMALL_SECONDS.
# The seed corpus is copied to a scratch directory under /tmp so the source
# tree is never modified; new inputs and crash artifacts stay there.
# Exits non-zero if any target crashes or fails to build.
set -u

seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build_dir=${BUILD_DIR:-$top}
clang=${CLANG:-clang}
targets=${FUZZ_TARGETS:-directive conf manifest s3xml proto ns}
small_seconds=${SMALL_SECONDS:-30}
sources="common/directive.c common/conf.c common/parse.c common/error.c common/log.c common/hrw.c common/proto.c common/ns.c stage/manifest.c stage/s3xml.c"

case $seconds$small_seconds in
''|*[!0-9]*) echo "usage: $0 [SECONDS]  (SECONDS and SMALL_SECONDS: integers)" >&2; exit 2 ;;
esac
if ! command -v "$clang" >/dev/null 2>&1; then
	echo "run-fuzz.sh: $clang not found (install clang)" >&2
	exit 2
fi

scratch=$(mktemp -d /tmp/bbcache-fuzz.XXXXXX) || exit 2
if [ -f "$build_dir/config.h" ]; then
	inc_config=$build_dir
else
	mkdir -p "$scratch/include"
	printf '#define _GNU_SOURCE 1\n' >"$scratch/include/config.h"
	inc_config=$scratch/include
fi

failed=0
summary=""
for t in $targets; do
	bin=$scratch/fuzz_$t
	log=$scratch/fuzz_$t.log
	corpus=$scratch/corpus/$t
	mkdir -p "$corpus" "$scratch/artifacts/$t"
	cp "$here/corpus/$t"/* "$corpus"/
	nseed=$(ls "$corpus" | wc -l)

	srcs=""
	for s in $sources; do srcs="$srcs $top/$s"; done
	# shellcheck disable=SC2086
	if ! "$clang" -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -fno-omit-frame-pointer \
		-I"$inc_config" -I"$top" -o "$bin" "$here/fuzz_$t.c" $srcs -lexpat \
		>"$log" 2>&1; then
		cat "$log" >&2
		summary="$summary
fuzz_$t: BUILD FAILED (see $log)"
		failed=1
		continue
	fi

	t_seconds=$seconds
	case $t in
	proto|ns) [ "$seconds" -gt "$small_seconds" ] && t_seconds=$small_seconds ;;
	esac
	# TMPDIR: fuzz_ns writes each input to a file; keep those with the
	# artifacts (removed on success).
	TMPDIR=$scratch "$bin" -max_total_time="$t_seconds" -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$scratch/artifacts/$t/" "$corpus" >>"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' "$log" | tail -1)
	nnow=$(ls "$corpus" | wc -l)
	if [ "$rc" -eq 0 ]; then
		summary="$summary
fuzz_$t: OK, ${runs:-?} runs in ${t_seconds}s, coverage ${cov:-?} edges, corpus $nseed -> $nnow"
	else
		art=$(ls "$scratch/artifacts/$t" 2>/dev/null | head -1)
		grep -m1 -E 'ERROR: (AddressSanitizer|libFuzzer)|runtime error' "$log" >&2
		summary="$summary
fuzz_$t: CRASH (exit $rc) after ${runs:-?} runs; input $scratch/artifacts/$t/$art; log $log"
		failed=1
	fi
done

printf '%s\n' "$summary" | sed '/^$/d'
if [ "$failed" -eq 0 ]; then
	rm -rf "$scratch"
else
	echo "run-fuzz.sh: artifacts kept in $scratch" >&2
fi
exit "$failed"
