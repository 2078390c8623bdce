#!/bin/sh
# Stage-in over HTTP: nginx (Range, ETag, JSON listings), python3 -m
# http.server (no Range), and our fault-injecting origin: 503 + Retry-After,
# 429, resets, truncation, wrong lengths, stalls, and an object replaced
# between two ranged GETs.  Every completed stage-in is byte-identical;
# every failed one names the object and leaves no file under a final name.
. "$(dirname "$0")/common.sh"
for c in nginx python3 curl; do bb_require "$c"; done

bb_make_dataset "$T/src/set" 200 0-300K
mkdir -p "$T/src/set/big" "$T/src/single"
bb_make_dataset "$T/src/set/big" 2 20M 11
bb_make_dataset "$T/src/single" 1 5M 12
single=$(cd "$T/src/single" && find . -type f | sed 's|^\./||')

# A self-signed certificate for 127.0.0.1 only (not for "localhost"), for
# nginx's HTTPS port (HTTP/2 offered).
bb_require openssl
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bbcache test" \
	-addext "subjectAltName=IP:127.0.0.1" -keyout "$T/tls.key" -out "$T/tls.crt" \
	>"$T/openssl.log" 2>&1 || { cat "$T/openssl.log" >&2; bb_die "openssl req failed"; }

echo "# nginx: a directory through its JSON listing"
bb_start_nginx "$T/src" "$T/tls.crt" "$T/tls.key" >/dev/null
bbc stage-in --no-progress "$HTTP_URL/set/" "$T/d1"
eq "stage-in from nginx exits 0" "$rc" 0
check "nginx: every byte equal" same_tree "$T/src/set" "$T/d1"
check "no temporary files" no_tmp "$T/d1"
check "manifest beside, not inside, the dataset" test -f "$T/.bbcache/d1.manifest"
eq "no manifest inside the dataset" "$(find "$T/d1" -name '*.manifest' | wc -l | tr -d ' ')" 0

echo "# large files: their ranges in turn, each file with its own range writer"
export BBCACHE_LOG_LEVEL=debug
bbc stage-in --no-progress --jobs 4 --chunk 1MiB "$HTTP_URL/set/big/" "$T/rw"
unset BBCACHE_LOG_LEVEL
eq "two files of 20 ranges each exit 0" "$rc" 0
check "... every byte equal" same_tree "$T/src/set/big" "$T/rw"
check "... no temporary files" no_tmp "$T/rw"
contains "... a range writer started" "$T/out.log" "range writer 1 of"
contains "... the second file has a range writer of its own" "$T/out.log" "range writer 2 of 4"

# Nothing reads these files back during the stage-in: the range writers
# write them O_DIRECT, except each file's last partial page, and except
# ranges that do not start on a page (--chunk 1000000).  Where $T's file
# system refuses O_DIRECT, everything goes through the page cache.
echo "# O_DIRECT: whole pages direct, partial pages and --buffered through the page cache"
bb_make_dataset "$T/src/odd" 3 3M-6M 13
if dd if=/dev/zero of="$T/dio.probe" bs=4096 count=1 oflag=direct 2>/dev/null; then dio=1; else dio=0; fi
rm -f "$T/dio.probe"
written() { sed -n 's/.*range writers: \([0-9]*\) bytes written O_DIRECT, \([0-9]*\) through.*/\1 \2/p' "$T/out.log"; }
odd_bytes=$(cd "$T/src/odd" && find . -type f -exec cat {} + | wc -c | tr -d ' ')
for mode in direct unaligned buffered; do
	case $mode in
	direct) extra="--chunk 1MiB" ;;
	unaligned) extra="--chunk 1000000" ;;
	buffered) extra="--chunk 1MiB --buffered" ;;
	esac
	export BBCACHE_LOG_LEVEL=debug
	# shellcheck disable=SC2086 # extra is two words
	bbc stage-in --no-progress --jobs 4 $extra "$HTTP_URL/odd/" "$T/odd-$mode"
	unset BBCACHE_LOG_LEVEL
	eq "$mode: exit 0" "$rc" 0
	check "$mode: every byte equal" same_tree "$T/src/odd" "$T/odd-$mode"
	check "$mode: no temporary files" no_tmp "$T/odd-$mode"
	# shellcheck disable=SC2046 # two numbers
	set -- $(written) x x
	eq "$mode: the range writers wrote every byte" "$(($1 + $2))" "$odd_bytes"
	case $mode$dio in
	direct1)
		check "direct: all but the three last partial pages O_DIRECT" \
			awk -v p="$2" 'BEGIN { exit !(p > 0 && p < 3 * 4096) }' ;;
	unaligned1)
		check "unaligned: ranges off a page boundary through the page cache, the others direct" \
			awk -v d="$1" -v p="$2" 'BEGIN { exit !(d > 0 && p > 1048576) }' ;;
	*)
		eq "$mode: nothing O_DIRECT" "$1" 0 ;;
	esac
done
# A file system that refuses O_DIRECT at open, or only at the first write:
# the same bytes, through the page cache.
[ -f "${BB_LINKSHIM:-}" ] || bb_die "BB_LINKSHIM (tests/origins/.libs/liblinkshim.so) not built: make check builds it"
for mode in no-direct-open no-direct-write; do
	rm -f "$T/shim.log"
	rc=0
	BB_SHIM=$mode BB_SHIM_LOG="$T/shim.log" LD_PRELOAD="$BB_LINKSHIM" BBCACHE_LOG_LEVEL=debug \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$BBCACHE" stage-in --no-progress --jobs 4 --chunk 1MiB "$HTTP_URL/odd/" "$T/odd-$mode" \
		>"$T/out.log" 2>&1 || rc=$?
	eq "$mode: stage-in exits 0" "$rc" 0
	eq "$mode: refused once per file, not once per block" "$(grep -c "O_DIRECT" "$T/shim.log")" 3
	check "$mode: every byte equal" same_tree "$T/src/odd" "$T/odd-$mode"
	check "$mode: no temporary files" no_tmp "$T/odd-$mode"
	# shellcheck disable=SC2046 # two numbers
	set -- $(written) x x
	eq "$mode: nothing O_DIRECT" "$1" 0
	eq "$mode: every byte through the page cache" "$2" "$odd_bytes"
done

echo "# ls, stat, verify answer from the manifest"
bbc ls "$T/d1"
contains "ls lists the big directory" "$T/out.log" "big/"
bbc stat "$T/d1" "big/$(cd "$T/src/set/big" && find . -type f | sort | head -n 1 | sed 's|^\./||')"
contains "stat shows the size" "$T/out.log" "Size: 20971520"
bbc verify "$T/d1"
eq "verify passes" "$rc" 0
f=$(cd "$T/d1" && find . -type f -size +1k | head -n 1)
printf 'x' >>"$T/d1/$f"
bbc verify "$T/d1"
eq "verify catches a changed file" "$rc" 1
contains "verify names the file" "$T/out.log" "${f#./}"

bbc verify "$T/.bbcache/d1.manifest"
eq "verify given the manifest finds the files too" "$rc" 1
contains "... and the same changed file" "$T/out.log" "${f#./}"

echo "# a POSIX origin (a parallel file system), with few descriptors allowed"
printf 'allowed_origins = file://%s/* %s/*\n' "$T/src" "$HTTP_URL" >"$T/site.conf"
rc=0
(ulimit -n 64 && "$BBCACHE" stage-in --no-progress --conf "$T/site.conf" "$T/src/set/" "$T/p1") >"$T/out.log" 2>&1 || rc=$?
eq "file:// stage-in of 202 files with 64 descriptors exits 0" "$rc" 0
check "file:// stage-in: every byte equal" same_tree "$T/src/set" "$T/p1"
bbc stage-in --no-progress --conf "$T/site.conf" "/etc/" "$T/p2"
eq "an origin outside allowed_origins exits 1" "$rc" 1
contains "... and says so" "$T/out.log" "is not an allowed origin"

echo "# a POSIX file that changes between listing and copy, or during it: a clear error, no final name"
[ -f "${BB_LINKSHIM:-}" ] || bb_die "BB_LINKSHIM (tests/origins/.libs/liblinkshim.so) not built: make check builds it"
mkdir -p "$T/src/chg"
bb_make_dataset "$T/src/chg" 3 6M 21
victim=$(cd "$T/src/chg" && find . -type f | sort | head -n 1 | sed 's|^\./||')
for mode in change-on-open change-on-read; do
	cp -a "$T/src/chg" "$T/src/chg-$mode"
	rm -f "$T/shim.log"
	rc=0
	BB_SHIM=$mode BB_SHIM_FILE="$T/src/chg-$mode/$victim" BB_SHIM_LOG="$T/shim.log" \
		LD_PRELOAD="$BB_LINKSHIM" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$BBCACHE" stage-in --no-progress --conf "$T/site.conf" "$T/src/chg-$mode/" "$T/c-$mode" \
		>"$T/out.log" 2>&1 || rc=$?
	contains "$mode: the shim changed the file" "$T/shim.log" "changed on"
	eq "$mode: stage-in exits 1" "$rc" 1
	contains "$mode: the error names the file" "$T/out.log" "$victim"
	contains "$mode: ... and says it changed" "$T/out.log" "changed on the origin since it was listed"
	check "$mode: no final name for the changed file" test ! -e "$T/c-$mode/$victim"
	check "$mode: no temporary files" no_tmp "$T/c-$mode"
	for g in $(cd "$T/src/chg" && find . -type f | sort | sed 's|^\./||'); do
		[ "$g" = "$victim" ] && continue
		check "$mode: the unchanged $g is complete" cmp -s "$T/src/chg/$g" "$T/c-$mode/$g"
	done
done

echo "# resume: only what is missing moves"
rm -f "$T/d1/$f"
bbc stage-in --no-progress --json "$HTTP_URL/set/" "$T/d1"
eq "resume exits 0" "$rc" 0
contains "one file moved" "$T/out.log" '"files":1,'
contains "the rest skipped" "$T/out.log" '"skipped":201'
check "resumed tree equal" same_tree "$T/src/set" "$T/d1"
small=$(cd "$T/d1" && find . -type f -size -100k -size +1k | sort | head -n 1)
printf 'not the origin bytes' >"$T/d1/$small"
bbc stage-in --no-progress --json "$HTTP_URL/set/" "$T/d1"
eq "resume over a changed small file exits 0" "$rc" 0
check "... which is replaced by the origin's bytes" cmp -s "$T/src/set/$small" "$T/d1/$small"
check "... and leaves no temporary" no_tmp "$T/d1"

echo "# a small file is named from an unnamed file (O_TMPFILE + linkat); each fallback"
[ -f "${BB_LINKSHIM:-}" ] || bb_die "BB_LINKSHIM (tests/origins/.libs/liblinkshim.so) not built: make check builds it"
for mode in no-tmpfile no-empty-path no-link; do
	rm -f "$T/shim.log"
	rc=0
	BB_SHIM=$mode BB_SHIM_LOG="$T/shim.log" LD_PRELOAD="$BB_LINKSHIM" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$BBCACHE" stage-in --no-progress "$HTTP_URL/set/" "$T/k-$mode" >"$T/out.log" 2>&1 || rc=$?
	eq "$mode: stage-in exits 0" "$rc" 0
	check "$mode: the shim refused a call" test -s "$T/shim.log"
	check "$mode: every byte equal" same_tree "$T/src/set" "$T/k-$mode"
	check "$mode: no temporary files" no_tmp "$T/k-$mode"
	eq "$mode: files are the user's alone (0600)" "$(find "$T/k-$mode" -type f ! -perm 0600 | head -n 3)" ""
done

echo "# include / exclude"
bbc stage-in --no-progress --include 'd00/*' --exclude '*file-00000[0-4]*' "$HTTP_URL/set/" "$T/d2"
eq "filtered stage-in exits 0" "$rc" 0
want=$(cd "$T/src/set" && find d00 -type f ! -name 'file-00000[0-4]*' | sort)
eq "exactly the d00 files not excluded" "$(cd "$T/d2" && find . -type f | sed 's|^\./||' | sort)" "$want"
check "the filter selected something" test -n "$want"

echo "# one file, type=file"
bbc stage-in --no-progress --type file "$HTTP_URL/single/$single" "$T/d3/one.bin"
eq "single file exits 0" "$rc" 0
check "single file equal" cmp -s "$T/src/single/$single" "$T/d3/one.bin"

echo "# a listing file: SIZE SHA256 PATH per line, verified by SHA-256"
(cd "$T/src/set" && find . -type f -path './d00/*' | sed 's|^\./||' | sort | while read -r f; do
	echo "$(wc -c <"$f" | tr -d ' ') $(sha256sum "$f" | cut -d' ' -f1) $f"; done) >"$T/src/set/files.list"
echo "# comment" >>"$T/src/set/files.list"
bbc stage-in --no-progress --type directory --verify sha256 "$HTTP_URL/set/files.list" "$T/l1"
eq "listing file exits 0" "$rc" 0
eq "listing file: exactly its files" "$(cd "$T/l1" && find . -type f | sed 's|^\./||' | sort)" "$(cd "$T/src/set" && find d00 -type f | sort)"
bad1=$(head -n 1 "$T/src/set/files.list" | cut -d' ' -f3)
awk 'NR == 1 { $2 = "0000000000000000000000000000000000000000000000000000000000000000" } { print }' \
	"$T/src/set/files.list" >"$T/files.tmp" && mv "$T/files.tmp" "$T/src/set/files.list"
bbc stage-in --no-progress --type directory --verify sha256 "$HTTP_URL/set/files.list" "$T/l2"
eq "a wrong SHA-256 exits 1" "$rc" 1
contains "a wrong SHA-256 is named" "$T/out.log" "$bad1: SHA-256 does not match"
check "a wrong SHA-256: no file under the final name" test ! -e "$T/l2/$bad1"
# Objects above the chunk size are fetched in ranges (nginx gives ETags and
# Range); their SHA-256 is computed while the ranges arrive.
set -- $(cd "$T/src/set" && find big -type f | sort)
{ echo "$(wc -c <"$T/src/set/$1" | tr -d ' ') $(sha256sum "$T/src/set/$1" | cut -d' ' -f1) $1"
  echo "$(wc -c <"$T/src/set/$2" | tr -d ' ') $(sha256sum "$T/src/set/$1" | cut -d' ' -f1) $2"; } >"$T/src/set/big.list"
bbc stage-in --no-progress --type directory --jobs 3 --chunk 4MiB "$HTTP_URL/set/big.list" "$T/l4"
eq "a wrong SHA-256 in ranges exits 1" "$rc" 1
contains "a wrong SHA-256 in ranges is named" "$T/out.log" "$2: SHA-256 does not match"
check "a wrong SHA-256 in ranges: no file under the final name" test ! -e "$T/l4/$2"
check "a wrong SHA-256 in ranges: no temporary" no_tmp "$T/l4"
check "a right SHA-256 in ranges: bytes equal" cmp -s "$T/src/set/$1" "$T/l4/$1"
rm -f "$T/src/set/big.list"
printf '12 - ../etc/passwd\n' >"$T/src/set/evil.list"
bbc stage-in --no-progress --type directory "$HTTP_URL/set/evil.list" "$T/l3"
contains "a listing file cannot escape" "$T/out.log" "without '..'"
rm -f "$T/src/set/files.list" "$T/src/set/evil.list"

echo "# python3 -m http.server: no Range support, whole-object GETs"
bb_start_pyhttp "$T/src" >/dev/null
bbc stage-in --no-progress --type file --chunk 1MiB "$PYHTTP_URL/single/$single" "$T/d4/one.bin"
eq "no-Range server exits 0" "$rc" 0
check "no-Range server: bytes equal" cmp -s "$T/src/single/$single" "$T/d4/one.bin"
bbc stage-in --no-progress "$PYHTTP_URL/set/" "$T/d5"
eq "an HTML listing is refused" "$rc" 1
contains "the message says what listing is needed" "$T/out.log" "autoindex_format json"

echo "# errors name the object, nothing half-written"
bbc stage-in --no-progress --type file "$HTTP_URL/single/nope.bin" "$T/d6/x"
eq "404 exits 1" "$rc" 1
contains "404 names the object" "$T/out.log" "nope.bin"
contains "404 says not found" "$T/out.log" "404"
check "404: no file" test ! -e "$T/d6/x"
bbc stage-in --no-progress --type file "http://no-such-host.invalid/x" "$T/d7/x"
eq "unknown host exits 1" "$rc" 1
contains "unknown host is named" "$T/out.log" "no-such-host.invalid"
# No descriptor left for the engine's epoll set: the reason, not "out of
# memory" (descriptors 3-9 closed, so that what the test runner left open
# does not count; no leak check, which needs descriptors of its own).
# no_fds WHAT DEST ARGS...: bbcache ARGS with 5 descriptors, into DEST.
no_fds() {
	_what=$1 _dest=$2
	shift 2
	rc=0
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
		sh -c 'exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-; ulimit -n 5; exec "$@"' x \
		"$BBCACHE" "$@" >"$T/out.log" 2>&1 || rc=$?
	eq "$_what out of descriptors exits 1" "$rc" 1
	contains "... names the transfer engine and why" "$T/out.log" \
		"cannot start the transfer engine: Too many open files"
	check "... and writes nothing" test ! -e "$_dest"
}
no_fds stage-in "$T/nofd" stage-in --no-progress "$HTTP_URL/set/" "$T/nofd"
no_fds stage-out "$T/nofd-out" stage-out --no-progress "$T/src/set" "file://$T/nofd-out"
bbc stage-in --no-progress "ftp://h/x" "$T/d8"
eq "unsupported scheme exits 1" "$rc" 1
contains "unsupported scheme is named" "$T/out.log" "unsupported scheme 'ftp'"
bbc stage-in --no-progress "http://user:secret@127.0.0.1:1/x" "$T/d8"
contains "credentials in URLs are refused" "$T/out.log" "must not carry credentials"
if grep -q secret "$T/out.log"; then bad "the password is not echoed"; else ok "the password is not echoed"; fi

echo "# HTTPS: the certificate is verified by default; HTTP/2 when the server offers it"
bbc stage-in --no-progress "$HTTPS_URL/set/big/" "$T/t1"
eq "an unknown CA exits 1" "$rc" 1
contains "... the message names the URL" "$T/out.log" "$HTTPS_URL/set/big/"
contains "... and says how to trust the CA" "$T/out.log" "BBCACHE_CA_BUNDLE"
eq "... nothing staged" "$(find "$T/t1" -type f 2>/dev/null | wc -l | tr -d ' ')" 0
BBCACHE_CA_BUNDLE="$T/tls.crt" bbc stage-in --no-progress --jobs 8 --chunk 1MiB \
	"$HTTPS_URL/set/" "$T/t2"
eq "with \$BBCACHE_CA_BUNDLE the stage-in exits 0" "$rc" 0
check "... every byte equal" same_tree "$T/src/set" "$T/t2"
check "... no temporary files" no_tmp "$T/t2"
sleep 1.5 # nginx flushes its access log every second
n2=$(grep -c '"GET /set/[^"]* HTTP/2.0"' "$HTTP_LOG")
check "... over HTTP/2 ($n2 GETs)" test "$n2" -gt 40
BBCACHE_CA_BUNDLE="$T/tls.crt" bbc stage-in --no-progress --type file \
	"https://localhost:$HTTPS_PORT/single/$single" "$T/t3/x"
eq "a certificate for another name exits 1" "$rc" 1
contains "... naming the host" "$T/out.log" "localhost"
contains "... and saying the certificate is for another name" "$T/out.log" "for another name"
check "... no file" test ! -e "$T/t3/x"
bbc stage-in --no-progress --no-verify-tls --type file "$HTTPS_URL/single/$single" "$T/t4/x"
eq "--no-verify-tls: an unknown CA is accepted" "$rc" 0
check "... bytes equal" cmp -s "$T/src/single/$single" "$T/t4/x"

echo "# a full destination: ENOSPC, no final name"
mkdir -p "$T/small"
if mount -t tmpfs -o size=8m bbcache-test "$T/small" 2>/dev/null; then
	bbc stage-in --no-progress "$HTTP_URL/set/big/" "$T/small/d"
	eq "full destination exits 1" "$rc" 1
	contains "full destination says so" "$T/out.log" "no space"
	eq "no file under a final name" "$(find "$T/small" -type f -name '*.bin' | wc -l | tr -d ' ')" 0
	check "no temporary files" no_tmp "$T/small"
	umount "$T/small"
else
	bad "cannot mount a small tmpfs for the ENOSPC test (needs root)"
fi

echo "# a write that fails mid-file (past a file size limit): the file fails, no final name"
# posix_fallocate fails too (EFBIG, not ENOSPC: no early failure), so the
# ranges past 10 MiB fail in pwrite, in the range writer's thread.
rc=0
sh -c "trap '' XFSZ; ulimit -f 10240; exec \"\$0\" \"\$@\"" "$BBCACHE" stage-in --no-progress \
	"$HTTP_URL/set/big/" "$T/dfsz" >"$T/out.log" 2>&1 || rc=$?
eq "a failed write exits 1" "$rc" 1
contains "a failed write names the file" "$T/out.log" "file-000000.bin: system call failed"
eq "no file under a final name after a failed write" \
	"$(find "$T/dfsz" -type f -name '*.bin' 2>/dev/null | wc -l | tr -d ' ')" 0
check "no temporary files after a failed write" no_tmp "$T/dfsz"

echo "# --shm: the files also land in the job's shared-memory cache"
job=$((700000000 + $$))
bbc stage-in --no-progress --shm 256MiB --job "$job" "$HTTP_URL/set/" "$T/s1"
eq "stage-in --shm exits 0" "$rc" 0
check "a segment for the job exists" test -e "/dev/shm/bbcache.$job"
eq "the segment is the user's alone" "$(stat -c %a "/dev/shm/bbcache.$job")" 600
allok=0
for f in $(cd "$T/src/set" && find . -type f | sed 's|^\./||' | sort | head -n 25) "big/$(cd "$T/src/set/big" && find . -type f | head -n 1 | sed 's|^\./||')"; do
	"$BBCACHE" shm-cat --job "$job" "$T/s1" "$f" >"$T/shm.out" 2>>"$T/shm.err" && cmp -s "$T/shm.out" "$T/src/set/$f" || allok=1
done
eq "26 files read back from shm byte-identical" "$allok" 0
bbc shm-drop --job "$job"
check "shm-drop removes the segment" test ! -e "/dev/shm/bbcache.$job"
bbc stage-in --no-progress --shm 8MiB --job "$job" "$HTTP_URL/set/big/" "$T/s2"
eq "a cache smaller than the data evicts: stage-in exits 0" "$rc" 0
check "a cache smaller than the data: the files are on disk" same_tree "$T/src/set/big" "$T/s2"
bbc shm-drop --job "$job"
bbc stage-in --no-progress --shm 16KiB --job "$job" "$HTTP_URL/set/big/" "$T/s3"
eq "a cache too small to exist: exits 1" "$rc" 1
contains "a cache too small to exist: says so" "$T/out.log" "cannot set up the shm cache of job $job"
check "a cache too small to exist: no segment left" test ! -e "/dev/shm/bbcache.$job"

echo "# faults: the engine retries, the result is byte-identical"
bb_start_faultsrv --serve "$T/src" >/dev/null
for fault in \
	'{"match":"/set/d0*","mode":"503","retry_after":1,"count":3}' \
	'{"match":"/set/d0*","mode":"429","count":3}' \
	'{"match":"/set/big/*","mode":"reset","count":2}' \
	'{"match":"/set/d0*","mode":"truncate","count":3}' \
	'{"match":"/set/big/*","mode":"truncate","count":2}' \
	'{"match":"/set/d0*","mode":"badlength","announce":"larger","count":2}' \
	'{"match":"/set/d0*","mode":"badlength","announce":"smaller","count":2}' \
	'{"match":"/set/big/*","mode":"stall","seconds":30,"count":1}'; do
	mode=$(echo "$fault" | sed 's/.*"mode":"\([a-z0-9]*\)".*/\1/')
	bb_fault_reset >/dev/null
	bb_fault "$fault" >/dev/null
	rm -rf "$T/f" "$T/.bbcache/f.manifest"
	bbc stage-in --no-progress --json --stall-timeout 2 "$FAULT_URL/set/" "$T/f"
	eq "fault $mode: exits 0" "$rc" 0
	check "fault $mode: every byte equal" same_tree "$T/src/set" "$T/f"
	n=$(bb_fault_stat 's["faults_total"]')
	check "fault $mode: was injected ($n)" test "$n" -ge 1
	retries=$(sed -n 's/.*"retries":\([0-9]*\).*/\1/p' "$T/out.log")
	check "fault $mode: was retried ($retries)" test "${retries:-0}" -ge 1
done

echo "# a fault that never stops: a clear error after the attempt budget"
bb_fault_reset >/dev/null
bb_fault '{"match":"/single/*","mode":"503","count":-1}' >/dev/null
bbc stage-in --no-progress --retries 2 --type file "$FAULT_URL/single/$single" "$T/g/one.bin"
eq "persistent 503 exits 1" "$rc" 1
contains "persistent 503 names the object and the attempts" "$T/out.log" "gave up after 3 attempts"
check "persistent 503: no file" test ! -e "$T/g/one.bin"
check "persistent 503: no temporary" no_tmp "$T/g"

echo "# an object replaced between two ranged GETs: never two versions in one file"
bb_fault_reset >/dev/null
bigname=$(cd "$T/src/set/big" && find . -type f | sort | head -n 1 | sed 's|^\./||')
bb_fault "{\"match\":\"/set/big/$bigname\",\"mode\":\"replace\",\"count\":1}" >/dev/null
# One transfer at a time, so the replacement lands between two ranged GETs.
bbc stage-in --no-progress --jobs 1 --chunk 4MiB "$FAULT_URL/set/big/" "$T/h"
eq "replaced object exits 1" "$rc" 1
contains "replaced object: the message says it changed" "$T/out.log" "changed on the origin"
contains "replaced object: the message names it" "$T/out.log" "$bigname"
check "replaced object: no file under its final name" test ! -e "$T/h/$bigname"
check "replaced object: no temporary" no_tmp "$T/h"
ifm=$(bb_fault_stat 's["if_match"]')
check "ranged GETs carried If-Match ($ifm)" test "$ifm" -ge 2

finish
