#!/bin/sh
# Self-test of the origin test harness: tests/origins/lib.sh and faultsrv.py.
# Starts s3rver, nginx, python3 -m http.server and faultsrv (serve mode, and
# upstream mode with --sigv4-check), checks each with curl and the AWS CLI,
# injects every fault mode once and checks its observable effect, then stops
# everything and checks that nothing is left behind.
# Exit 0: all passed; 1: a check failed or a needed tool is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
BB_ORIGINS_DIR=$here
. "$here/lib.sh"
trap bb_stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for c in python3 curl node s3rver nginx aws botocore sha256sum ps; do bb_require "$c"; done

# http CODEVAR OUT URL CURLARGS...: status code of a GET into OUT, curl's rc in $rc
fetch() {
	_out=$1; shift
	rc=0
	code=$(curl -s -o "$_out" -D "$_out.h" -w '%{http_code}' "$@") || rc=$?
}
hdr() { # FILE NAME: a response header's value
	tr -d '\r' <"$1" | sed -n "s/^$2: *//Ip" | tail -n 1
}
# s3via ENDPOINT ARGS...: bb_s3 through another endpoint (faultsrv)
s3via() {
	BB_S3_ENDPOINT=$1; shift
	_r=0; bb_s3 "$@" || _r=$?
	unset BB_S3_ENDPOINT
	return $_r
}
size() { wc -c <"$1" | tr -d ' '; }
stat_of() { bb_fault_stat "$@"; }

T=$(bb_tmpdir)
start=$(date +%s)

echo "# datasets"
bb_make_dataset "$T/data" 30 0-70K
bb_make_dataset "$T/data2" 30 0-70K
eq "bb_make_dataset is deterministic" "$(bb_sha_tree "$T/data" | sha256sum)" "$(bb_sha_tree "$T/data2" | sha256sum)"
eq "bb_make_dataset made 30 files" "$(find "$T/data" -type f | wc -l | tr -d ' ')" 30
rm -rf "$T/data2"
mkdir -p "$T/big"
bb_make_dataset "$T/big" 1 9M 7
big=$(find "$T/big" -type f)
one="d01/d00/file-000001.bin"
mkdir -p "$T/obj"
bb_make_dataset "$T/obj" 1 100K 3
obj=$(cd "$T/obj" && find . -type f | sed 's|^\./||')
objsz=102400

echo "# s3rver"
bb_start_s3rver "$T/s3data" >/dev/null
check "s3rver answers on $S3_ENDPOINT" curl -sf -o /dev/null "$S3_ENDPOINT/"
check "aws s3 mb" bb_s3 s3 mb s3://bkt
check "aws s3 cp --recursive (upload)" bb_s3 s3 cp --quiet --recursive "$T/data" s3://bkt/data/
n=$(bb_s3 s3api list-objects-v2 --bucket bkt --prefix data/ --page-size 7 --query 'Contents[].Key' --output text | wc -w | tr -d ' ')
eq "ListObjectsV2 (paginated by the CLI) lists 30 objects" "$n" 30
page=$(bb_s3 s3api list-objects-v2 --bucket bkt --prefix data/ --max-keys 7 --no-paginate --query 'length(Contents)' --output text)
eq "ListObjectsV2 max-keys=7 gives one page of 7" "$page" 7
bb_s3 s3api get-object --bucket bkt --key "data/$one" --range bytes=10-19 "$T/range.out" >/dev/null
eq "s3rver ranged GET" "$(od -An -tx1 "$T/range.out")" "$(dd if="$T/data/$one" bs=1 skip=10 count=10 2>/dev/null | od -An -tx1)"
check "aws s3 cp --recursive (download)" bb_s3 s3 cp --quiet --recursive s3://bkt/data/ "$T/back/"
eq "s3rver round trip is byte-identical" "$(bb_sha_tree "$T/back")" "$(bb_sha_tree "$T/data")"
rm -rf "$T/back"

echo "# nginx"
bb_start_nginx "$T/data" >/dev/null
nginx_url=$HTTP_URL
fetch "$T/n.json" "$HTTP_URL/d01/"
eq "nginx listing status" "$code" 200
check "nginx listing is autoindex JSON" "$BB_PYTHON" -c 'import json,sys; l=json.load(open(sys.argv[1])); assert {e["type"] for e in l} == {"directory"}' "$T/n.json"
fetch "$T/n.out" -r 100-199 "$HTTP_URL/$one"
eq "nginx Range gives 206" "$code" 206
eq "nginx Range body" "$(sha256sum <"$T/n.out")" "$(dd if="$T/data/$one" bs=1 skip=100 count=100 2>/dev/null | sha256sum)"
check "nginx sends an ETag" test -n "$(hdr "$T/n.out.h" ETag)"
fetch "$T/n.out" -r 99999999- "$HTTP_URL/$one"
eq "nginx Range past the end gives 416" "$code" 416

echo "# python3 -m http.server"
bb_start_pyhttp "$T/data" >/dev/null
fetch "$T/p.out" -r 100-199 "$PYHTTP_URL/$one"
eq "http.server ignores Range (200)" "$code" 200
eq "http.server sends the whole object" "$(sha256sum <"$T/p.out")" "$(sha256sum <"$T/data/$one")"
check "http.server speaks HTTP/1.0" grep -q '^HTTP/1.0 200' "$T/p.out.h"

echo "# faultsrv --serve"
cp -r "$T/data" "$T/serve"
cp "$T/obj/$obj" "$T/serve/obj.bin"
bb_start_faultsrv --serve "$T/serve" >/dev/null
F=$FAULT_URL
fetch "$T/f.out" "$F/$one"
eq "serve: GET 200" "$code" 200
eq "serve: GET body" "$(sha256sum <"$T/f.out")" "$(sha256sum <"$T/data/$one")"
etag=$(hdr "$T/f.out.h" ETag)
eq "serve: ETag is the quoted md5" "$etag" "\"$(md5sum <"$T/data/$one" | cut -d' ' -f1)\""
check "serve: Last-Modified" test -n "$(hdr "$T/f.out.h" Last-Modified)"
fetch "$T/f.out" -r 100-199 "$F/$one"
eq "serve: Range gives 206" "$code" 206
eq "serve: Content-Range" "$(hdr "$T/f.out.h" Content-Range)" "bytes 100-199/$(size "$T/data/$one")"
eq "serve: Range body" "$(sha256sum <"$T/f.out")" "$(dd if="$T/data/$one" bs=1 skip=100 count=100 2>/dev/null | sha256sum)"
fetch "$T/f.out" -r 99999999- "$F/$one"
eq "serve: Range past the end gives 416" "$code" 416
fetch "$T/f.out" -r 0-9 -H "If-Match: $etag" "$F/$one"
eq "serve: matching If-Match gives 206" "$code" 206
fetch "$T/f.out" -r 0-9 -H 'If-Match: "0123"' "$F/$one"
eq "serve: other If-Match gives 412" "$code" 412
fetch "$T/f.out" -I "$F/$one"
eq "serve: HEAD Content-Length" "$(hdr "$T/f.out.h" Content-Length)" "$(size "$T/data/$one")"
curl -s "$F/d01/" >"$T/f.json"
curl -s "$nginx_url/d01/d00/" >"$T/n1.json"
curl -s "$F/d01/d00/" >"$T/f1.json"
check "serve: listings have nginx's JSON shape" "$BB_PYTHON" -c '
import json, sys
a, b, c = (json.load(open(p)) for p in sys.argv[1:4])
strip = lambda l: [{k: v for k, v in e.items() if k != "mtime"} for e in l]
assert strip(a) == strip(json.load(open(sys.argv[4]))), "d01/"
assert strip(b) == strip(c), "d01/d00/"
assert all(set(e) == ({"name", "type", "mtime", "size"} if e["type"] == "file" else {"name", "type", "mtime"}) for e in c)
' "$T/f.json" "$T/n1.json" "$T/f1.json" "$T/n.json"
curl -sv -o /dev/null -o /dev/null "$F/$one" "$F/obj.bin" 2>"$T/ka.err"
check "serve: HTTP/1.1 keep-alive (2 requests, 1 connection)" grep -qi 're-using existing connection' "$T/ka.err"
eq "stats: requests per path and method" "$(stat_of 's["by_path"]["/'"$one"'"]["GET"]')" 6

echo "# fault modes (serve)"
bb_fault_reset
bb_fault '{"match": "/obj.bin", "mode": "503", "retry_after": 7}'
fetch "$T/f.out" "$F/obj.bin"
eq "503: status" "$code" 503
eq "503: Retry-After" "$(hdr "$T/f.out.h" Retry-After)" 7
fetch "$T/f.out" "$F/obj.bin"
eq "503: count 1, the next request is served" "$code" 200
bb_fault '{"match": "/obj*", "mode": "429", "count": 2}'
fetch "$T/f.out" "$F/obj.bin"; c1=$code
fetch "$T/f.out" "$F/obj.bin"; c2=$code
fetch "$T/f.out" "$F/obj.bin"; c3=$code
eq "429: twice (count 2), then 200" "$c1 $c2 $c3" "429 429 200"
bb_fault '{"match": "/obj.bin", "mode": "500"}'
fetch "$T/f.out" "$F/obj.bin"
eq "500: status" "$code" 500
bb_fault '{"match": "/obj.bin", "mode": "reset", "bytes": 5000}'
fetch "$T/f.out" "$F/obj.bin"
eq "reset: curl sees a connection reset (56)" "$rc" 56
check "reset: short body ($(size "$T/f.out") < $objsz)" test "$(size "$T/f.out")" -lt "$objsz"
bb_fault '{"match": "/obj.bin", "mode": "truncate", "bytes": 1000}'
fetch "$T/f.out" "$F/obj.bin"
eq "truncate: curl sees a partial file (18)" "$rc" 18
eq "truncate: 1000 bytes arrived" "$(size "$T/f.out")" 1000
eq "truncate: full Content-Length announced" "$(hdr "$T/f.out.h" Content-Length)" "$objsz"
bb_fault '{"match": "/obj.bin", "mode": "badlength", "announce": "larger", "delta": 10}'
fetch "$T/f.out" "$F/obj.bin"
eq "badlength larger: curl sees a partial file (18)" "$rc" 18
eq "badlength larger: Content-Length" "$(hdr "$T/f.out.h" Content-Length)" $((objsz + 10))
eq "badlength larger: the whole body arrived" "$(size "$T/f.out")" "$objsz"
bb_fault '{"match": "/obj.bin", "mode": "badlength", "announce": "smaller", "delta": 100}'
fetch "$T/f.out" "$F/obj.bin"
eq "badlength smaller: Content-Length" "$(hdr "$T/f.out.h" Content-Length)" $((objsz - 100))
eq "badlength smaller: the client reads only what was announced" "$(size "$T/f.out")" $((objsz - 100))
bb_fault '{"match": "/obj.bin", "mode": "stall", "bytes": 100, "seconds": 3}'
t0=$(date +%s%N)
fetch "$T/f.out" --max-time 1 "$F/obj.bin"
t1=$(date +%s%N)
eq "stall: the client times out (28)" "$rc" 28
eq "stall: 100 bytes arrived before the stall" "$(size "$T/f.out")" 100
check "stall: the client waited ~1 s" test $(((t1 - t0) / 1000000)) -ge 900
bb_fault '{"match": "/obj.bin", "mode": "stall", "bytes": 100, "seconds": 1, "then": "continue"}'
fetch "$T/f.out" "$F/obj.bin"
eq "stall then continue: complete body" "$(sha256sum <"$T/f.out")" "$(sha256sum <"$T/obj/$obj")"
bb_fault '{"match": "/obj.bin", "mode": "slow", "rate": 200000}'
t0=$(date +%s%N)
fetch "$T/f.out" "$F/obj.bin"
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
eq "slow: complete body" "$(sha256sum <"$T/f.out")" "$(sha256sum <"$T/obj/$obj")"
check "slow: 100 KiB at 200 kB/s took ${ms} ms (>= 400)" test "$ms" -ge 400
bb_fault '{"match": "/obj.bin", "mode": "503", "skip": 1, "method": "GET"}'
fetch "$T/f.out" "$F/obj.bin"; c1=$code
fetch "$T/f.out" "$F/obj.bin"; c2=$code
eq "skip 1: the second GET is faulted" "$c1 $c2" "200 503"
bb_fault '{"match": "/obj.bin", "mode": "replace"}'
fetch "$T/f.out" "$F/obj.bin"
eq "replace: a GET without Range does not trigger it" "$(hdr "$T/f.out.h" ETag)" "\"$(md5sum <"$T/obj/$obj" | cut -d' ' -f1)\""
fetch "$T/r1.out" -r 0-99 "$F/obj.bin"
e1=$(hdr "$T/r1.out.h" ETag)
eq "replace: first ranged GET gets the old ETag" "$e1" "\"$(md5sum <"$T/obj/$obj" | cut -d' ' -f1)\""
fetch "$T/r2.out" -r 100-199 -H "If-Match: $e1" "$F/obj.bin"
eq "replace: the next ranged GET with If-Match gets 412" "$code" 412
fetch "$T/r3.out" -r 100-199 "$F/obj.bin"
eq "replace: without If-Match, 206" "$code" 206
check "replace: ... with a new ETag" test "$(hdr "$T/r3.out.h" ETag)" != "$e1"
old=$(dd if="$T/obj/$obj" bs=1 skip=100 count=100 2>/dev/null | od -An -tx1 | tr -d ' \n')
new=$(od -An -tx1 "$T/r3.out" | tr -d ' \n')
check "replace: ... and bytes of the other version (mixed bytes)" test "$old" != "$new"
check "replace: the file on disk has changed" test "$(sha256sum <"$T/serve/obj.bin")" != "$(sha256sum <"$T/obj/$obj")"
for m in 503 429 500 reset truncate badlength stall slow replace; do
	want=1
	case $m in 429|badlength|stall) want=2 ;; 503) want=2 ;; esac
	eq "stats: faults[$m]" "$(stat_of 's["faults"]["'$m'"]')" "$want"
done
eq "stats: replaced" "$(stat_of 's["replaced"]')" 1
eq "stats: If-Match requests" "$(stat_of 's["if_match"]')" 1
bb_fault_reset
eq "/__reset clears the counters" "$(stat_of 's["total"]')" 0
rc=0; curl -sf -o /dev/null -X POST -d '{"mode": "nonsense"}' "$F/__fault" || rc=$?
eq "/__fault refuses an unknown mode" "$rc" 22

echo "# faultsrv --upstream nginx"
bb_start_faultsrv --upstream "$nginx_url" >/dev/null
FN=$FAULT_URL
fetch "$T/u.out" "$FN/$one"
eq "proxy: GET via nginx" "$(sha256sum <"$T/u.out")" "$(sha256sum <"$T/data/$one")"
fetch "$T/u.out" -r 100-199 "$FN/$one"
eq "proxy: Range forwarded (206)" "$code" 206
check "proxy: nginx's ETag forwarded" test -n "$(hdr "$T/u.out.h" ETag)"
curl -s "$FN/d01/" >"$T/u.json"
check "proxy: JSON listing forwarded" cmp -s "$T/u.json" "$T/n.json"
bb_fault '{"match": "/d01/*", "mode": "truncate", "bytes": 10, "method": "GET"}' "$FN"
fetch "$T/u.out" "$FN/$one"
eq "proxy: truncate (18, 10 bytes)" "$rc $(size "$T/u.out")" "18 10"
fetch "$T/u.out" "$FN/$one"
eq "proxy: next request complete" "$(sha256sum <"$T/u.out")" "$(sha256sum <"$T/data/$one")"

echo "# faultsrv --upstream s3rver --sigv4-check"
bb_start_faultsrv --upstream "$S3_ENDPOINT" --sigv4-check >/dev/null
FS=$FAULT_URL
check "aws s3 cp (9 MiB, multipart) through the checker" s3via "$FS" s3 cp --quiet "$big" s3://bkt/big/big.bin
check "... it was a multipart upload" test "$(stat_of 's["by_method"]["POST"]' "$FS")" -ge 2
check "aws s3 cp --recursive through the checker" s3via "$FS" s3 cp --quiet --recursive s3://bkt/ "$T/back/"
eq "... byte-identical" "$(bb_sha_tree "$T/back/data")" "$(bb_sha_tree "$T/data")"
eq "... big file byte-identical" "$(sha256sum <"$T/back/big/big.bin")" "$(sha256sum <"$big")"
eq "SigV4 of every awscli request verified (bad)" "$(stat_of 's["sigv4"]["bad"]' "$FS")" 0
check "SigV4 of every awscli request verified (good > 5)" test "$(stat_of 's["sigv4"]["good"]' "$FS")" -gt 5
fetch "$T/s.out" --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$FS/bkt/data/$one"
eq "curl --aws-sigv4 with the right secret: 200" "$code" 200
eq "... body" "$(sha256sum <"$T/s.out")" "$(sha256sum <"$T/data/$one")"
fetch "$T/s.out" --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$FS/bkt?list-type=2&max-keys=3&prefix=data%2Fd01%2F"
eq "curl --aws-sigv4 ListObjectsV2, query in canonical order: 200" "$code" 200
check "... 3 keys listed" test "$(grep -o '<Key>' "$T/s.out" | wc -l)" -eq 3
fetch "$T/s.out" --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:WRONG -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$FS/bkt/data/$one"
eq "curl --aws-sigv4 with a wrong secret: 403" "$code" 403
check "... SignatureDoesNotMatch" grep -q '<Code>SignatureDoesNotMatch</Code>' "$T/s.out"
fetch "$T/s.out" --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER "$FS/bkt/data/$one"
eq "signed without x-amz-content-sha256: 400 (as S3 does)" "$code" 400
fetch "$T/s.out" "$FS/bkt/data/$one"
eq "unsigned request: 403" "$code" 403
eq "stats: sigv4 bad" "$(stat_of 's["sigv4"]["bad"]' "$FS")" 2
eq "stats: sigv4 unsigned" "$(stat_of 's["sigv4"]["unsigned"]' "$FS")" 1
bb_fault '{"match": "/bkt/data/*", "mode": "503", "retry_after": 0, "method": "GET"}' "$FS"
check "aws s3 cp retries a 503 and succeeds" s3via "$FS" s3 cp --quiet "s3://bkt/data/$one" "$T/retry.out"
eq "... byte-identical" "$(sha256sum <"$T/retry.out")" "$(sha256sum <"$T/data/$one")"
eq "... the retry is counted (GETs of the key: 1 cp -r + 4 curl + 503 + retry)" "$(stat_of 's["by_path"]["/bkt/data/'"$one"'"]["GET"]' "$FS")" 7
eq "... one 503 injected" "$(stat_of 's["faults"]["503"]' "$FS")" 1

echo "# stop everything"
pids=$(bb_pids)
check "processes were started ($(echo $pids | wc -w | tr -d ' '))" test -n "$pids"
bb_stop_all
left=""
for p in $pids; do
	if bb__alive "$p"; then left="$left $p"; fi
done
eq "no process left" "$left" ""
check "temporary directory removed" test ! -e "$T"
users=$(BB_T="$T" "$BB_PYTHON" -c '
import os
t = os.environ["BB_T"].encode()
for p in os.listdir("/proc"):
    if p.isdigit() and int(p) != os.getpid():
        try:
            if t in open("/proc/%s/cmdline" % p, "rb").read():
                print(p)
        except OSError:
            pass')
eq "no process mentions $T" "$users" ""

echo "# $(($(date +%s) - start)) s"
bb_checks_done
