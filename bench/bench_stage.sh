#!/bin/sh
# Stage-in benchmark: bbcache stage-in against the peer clients, in one run,
# on the same data from two real origins started here on 127.0.0.1:
#
#   nginx   (tests/origins/lib.sh bb_start_nginx; JSON autoindex)
#   s3rver  (bb_start_s3rver; the data uploaded with awscli)
#
# Dataset: BENCH_SMALL_N objects of BENCH_SMALL_SIZE (default 10000 x 100K)
# and BENCH_LARGE_N of BENCH_LARGE_SIZE (default 4 x 1G); sizes take K/M/G
# (KiB...). A part with N=0 is left out. BENCH_ORIGINS (default
# "nginx s3rver") names the origins to run; the other is not started.
#
# Tools, each into a fresh destination on local disk (under the lib's
# temporary directory; never /dev/shm):
#   bbcache stage-in --jobs J     for J in BENCH_BBCACHE_JOBS (default "32 64"),
#                                 the best one is the bbcache figure
#   /usr/bin/aws s3 sync          s3 only; max_concurrent_requests 32 (private config)
#   rclone copy --transfers 32    http: :http: remote (--http-url) on a twin nginx
#                                 with HTML listings (rclone parses no JSON ones);
#                                 s3: bb_rclone with --fast-list (s3rver answers a
#                                 delimiter listing of a prefix whose objects are two
#                                 levels down with no CommonPrefixes: without it
#                                 rclone copies nothing and exits 0)
#   curl --parallel --parallel-max 50
#                                 given the URL list (listing not timed); s3:
#                                 plain path-style URLs, twice: unsigned
#                                 (s3rver allows anonymous GET) and signed
#                                 (--aws-sigv4, as against a real S3)
#
# On s3rver, signed and unsigned clients are compared apart, so that no
# client gains or loses by how it authenticates (s3rver 3.7.1 checks no
# signature but builds the canonical request of every signed one in
# JavaScript on its one Node thread; measured, that cost between nothing
# and a tenth of its CPU: docs/origins.md). Two
# ratios: bbcache (signed) against the fastest signed peer (aws, rclone,
# signed curl), and bbcache --no-sign-request against unsigned curl. The
# best --jobs of the signed runs is used for the unsigned run, and once more
# with --verify none, for information (not in the ratios): the cost of the
# MD5-against-ETag check, which only rclone of the peers also makes.
#
# BENCH_ROUNDS (default 1) runs every tool of a part that many times, the
# tools in turn within each round (so that a noisy minute falls on all of
# them); the ratios then use each tool's median run (of an even count, the
# faster of the two middle ones), and every run is listed.
#
# Before every run: the previous destination is removed, `sync`, the page
# cache is dropped (as root; BENCH_DROP_CACHES=0 to skip) and the origin's
# files of that part are read once, so every run sees a hot origin and a
# clean destination. Times are wall-clock from the tool's start to its exit
# (no fsync by any tool). Every result is verified byte for byte afterwards
# (not timed): the sha256 of every file against the source, the same lines
# as bb_sha_tree but hashed by OpenSSL through python hashlib on 2 threads
# (coreutils sha256sum runs at ~250 MB/s here, too slow for 5 GiB per run).
#
# Physical references, measured in the same run: dd of 1 GiB to the local
# disk with conv=fsync; `cp -r` of each part from page cache to local disk
# (the file-system ceiling without any network); CPU use of the client and
# of the server during each run (s3rver is one Node thread: ~100% means
# server-bound); the listing of each part alone (rclone lsf -R), which curl
# is spared since it is handed the URL list. nginx's own serving rate needs
# a load generator (no wrk here): the fastest client's rate is printed as
# its lower bound.
#
#   bench/bench_stage.sh [BUILD_DIR]    bbcache: $BBCACHE, else BUILD_DIR/agent/bbcache
#                                       (BUILD_DIR default: _build/ci)
# Exit status: 0 when every run completed and verified, 1 otherwise (the
# targets are reported, not enforced).
top=$(cd "$(dirname "$0")/.." && pwd)
BB_ORIGINS_DIR=${BB_ORIGINS_DIR:-$top/tests/origins}
[ -f "$BB_ORIGINS_DIR/lib.sh" ] || { echo "bench_stage: $BB_ORIGINS_DIR/lib.sh not found" >&2; exit 1; }
. "$BB_ORIGINS_DIR/lib.sh"

b=${1:-$top/_build/ci}
BBCACHE=${BBCACHE:-$b/agent/bbcache}
SMALL_N=${BENCH_SMALL_N:-10000}
SMALL_SIZE=${BENCH_SMALL_SIZE:-100K}
LARGE_N=${BENCH_LARGE_N:-4}
LARGE_SIZE=${BENCH_LARGE_SIZE:-1G}
BB_JOBS=${BENCH_BBCACHE_JOBS:-32 64}
PEER_CONC=32
CURL_PAR=50
DROP=${BENCH_DROP_CACHES:-1}
ROUNDS=${BENCH_ROUNDS:-1}
case $ROUNDS in '' | *[!0-9]* | 0) echo "bench_stage: BENCH_ROUNDS must be a positive number" >&2; exit 1 ;; esac
ROUND=1
ORIGINS=${BENCH_ORIGINS:-nginx s3rver}
has_origin() { case " $ORIGINS " in *" $1 "*) return 0 ;; esac; return 1; }
RUN_ORIGINS=""
for o in nginx s3rver; do has_origin "$o" && RUN_ORIGINS="$RUN_ORIGINS $o"; done
[ -n "$RUN_ORIGINS" ] || bb_die "BENCH_ORIGINS names neither nginx nor s3rver"

T0=$(date +%s.%N)
NP2=""          # the second nginx (HTML listings, for rclone)
FAILS=0

bench_cleanup() {
	if [ -n "$NP2" ]; then
		kill -TERM "$NP2" 2>/dev/null
		wait "$NP2" 2>/dev/null
		NP2=""
	fi
	bb_stop_all
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP

say() { printf '%s\n' "bench: $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

[ -x "$BBCACHE" ] || bb_die "bbcache not found at $BBCACHE: build first, or set BBCACHE"
for c in python3 nginx s3rver aws rclone curl; do bb_require "$c"; done

T=$(bb_tmpdir)
case $(stat -f -c %T "$T" 2>/dev/null) in
tmpfs | ramfs) bb_die "$T is on $(stat -f -c %T "$T"): set TMPDIR to a directory on local disk" ;;
esac
mkdir -p "$T/log" "$T/dst" || bb_die "cannot make $T/log"
RES=$T/results
: >"$RES"

# sha_tree DIR — what bb_sha_tree prints (sha256  ./path, sorted by bytes),
# hashed with OpenSSL (python hashlib releases the GIL) on 2 threads.
sha_tree() {
	"$BB_PYTHON" - "$1" <<-'EOF'
	import hashlib, os, stat, sys
	from concurrent.futures import ThreadPoolExecutor
	top = sys.argv[1]
	rel = []
	for d, dirs, files in os.walk(top):
	    for f in files:
	        p = os.path.join(d, f)
	        if stat.S_ISREG(os.lstat(p).st_mode):
	            rel.append("./" + os.path.relpath(p, top))
	rel.sort(key=os.fsencode)
	def h(r):
	    s = hashlib.sha256()
	    with open(os.path.join(top, r), "rb", buffering=0) as f:
	        while True:
	            b = f.read(1 << 22)
	            if not b:
	                break
	            s.update(b)
	    return "%s  %s\n" % (s.hexdigest(), r)
	with ThreadPoolExecutor(2) as ex:
	    sys.stdout.write("".join(ex.map(h, rel)))
	EOF
}

# The page cache: flush and drop (root), then read DIR's files once.
prepare() {
	sync
	if [ "$DROP" = 1 ] && [ -w /proc/sys/vm/drop_caches ]; then
		echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || DROP=0
	fi
	[ -n "${1:-}" ] && find "$1" -type f -print0 | xargs -0 -r cat >/dev/null
}

cpu_children() { awk '{ print $16 + $17 }' "/proc/$$/stat"; } # waited-for children, ticks
cpu_of() { # PIDS... — utime+stime of those processes and their descendants
	for _p in "$@"; do
		echo "$_p"
		ps -o pid= --ppid "$_p" 2>/dev/null
	done | while read -r _q; do
		awk '{ print $14 + $15 }' "/proc/$_q/stat" 2>/dev/null
	done | awk '{ s += $1 } END { print s + 0 }'
}
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

# run ORIGIN PART TOOL CMD... — one timed run into $T/dst/PART, verified.
# SRV_PIDS: the server processes whose CPU is counted. CLASS: how the row
# counts in the ratios: bb or peer (signed on s3rver), bb-anon or peer-anon
# (unsigned requests), info (none).
RUN_I=0
run() {
	_o=$1 _part=$2 _tool=$3
	shift 3
	RUN_I=$((RUN_I + 1))
	_log=$T/log/$RUN_I
	rm -rf "$T/dst"
	mkdir -p "$T/dst" || bb_die "cannot make $T/dst"
	if [ "$_o" = s3rver ]; then prepare "$T/s3/bkt/$_part"; else prepare "$T/src/$_part"; fi
	say "$_o $_part: $_tool$([ "$ROUNDS" -gt 1 ] && echo " (round $ROUND of $ROUNDS)")"
	_c0=$(cpu_children)
	# shellcheck disable=SC2086
	_s0=$(cpu_of $SRV_PIDS)
	_t0=$(now)
	"$@" >"$_log.out" 2>"$_log.err" </dev/null
	_rc=$?
	_t1=$(now)
	# shellcheck disable=SC2086
	_s1=$(cpu_of $SRV_PIDS)
	_c1=$(cpu_children)
	_sec=$(elapsed "$_t0" "$_t1")
	if [ "$_rc" -ne 0 ]; then
		_ok="FAIL(exit $_rc)"
		say "  $_tool exited $_rc; its stderr:"
		tail -5 "$_log.err" >&2
	elif [ ! -d "$T/dst/$_part" ]; then
		_ok="FAIL(no output)"
	elif sha_tree "$T/dst/$_part" | cmp -s - "$T/sum.$_part"; then
		_ok=ok
	else
		_ok="FAIL(differs)"
		sha_tree "$T/dst/$_part" >"$_log.sum"
		say "  $_tool: destination differs from the source:"
		diff "$T/sum.$_part" "$_log.sum" | head -5 >&2
	fi
	case $_ok in ok) ;; *) FAILS=$((FAILS + 1)) ;; esac
	eval "_n=\$N_$_part _by=\$BYTES_$_part"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$_o" "$_part" "$_tool" "$_sec" \
		"$_n" "$_by" "$_ok" \
		"$(awk -v c="$((_c1 - _c0))" -v hz="$HZ" -v s="$_sec" 'BEGIN { printf "%.0f", 100 * c / hz / s }')" \
		"$(awk -v c="$((_s1 - _s0))" -v hz="$HZ" -v s="$_sec" 'BEGIN { printf "%.0f", 100 * c / hz / s }')" \
		"$_log" "$CLASS" "$ROUND" >>"$RES"
	say "  $_sec s, $_ok"
	rm -rf "$T/dst"
}

# ---- the machine and the tools ---------------------------------------------------
echo "bench_stage: stage-in from nginx and s3rver on 127.0.0.1, $(nproc) cores, $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bbcache: $BBCACHE ($("$BBCACHE" --version 2>&1 | head -1))"
echo "peers: $("$BB_AWS" --version 2>&1 | cut -d' ' -f1), $(rclone version 2>/dev/null | head -1), $(curl --version | head -1 | cut -d' ' -f1-2), nginx $(nginx -v 2>&1 | sed 's|.*/||'), s3rver 3.7.1 (node $(node --version))"
echo "destination: $T (local disk, $(stat -f -c %T "$T")); page cache dropped before each run: $([ "$DROP" = 1 ] && [ -w /proc/sys/vm/drop_caches ] && echo yes || echo no)"

# ---- the dataset ----------------------------------------------------------------
PARTS=""
[ "$SMALL_N" -gt 0 ] && PARTS="small"
[ "$LARGE_N" -gt 0 ] && PARTS="$PARTS large"
[ -n "$PARTS" ] || bb_die "nothing to do: BENCH_SMALL_N and BENCH_LARGE_N are both 0"
t=$(now)
pids=""
[ "$SMALL_N" -gt 0 ] && { bb_make_dataset "$T/src/small" "$SMALL_N" "$SMALL_SIZE" 1 & pids="$pids $!"; }
[ "$LARGE_N" -gt 0 ] && { bb_make_dataset "$T/src/large" "$LARGE_N" "$LARGE_SIZE" 2 & pids="$pids $!"; }
for p in $pids; do wait "$p" || bb_die "making the dataset failed"; done
for part in $PARTS; do
	eval "N_$part=\$(find \"\$T/src/\$part\" -type f | wc -l)"
	eval "BYTES_$part=\$(find \"\$T/src/\$part\" -type f -printf '%s\n' | awk '{ s += \$1 } END { printf \"%.0f\", s }')"
	sha_tree "$T/src/$part" >"$T/sum.$part" || bb_die "hashing the source failed"
done
echo "dataset: small ${N_small:-0} x $SMALL_SIZE = ${BYTES_small:-0} B; large ${N_large:-0} x $LARGE_SIZE = ${BYTES_large:-0} B (made and hashed in $(elapsed "$t" "$(now)") s)"

# ---- physical references ----------------------------------------------------------
prepare
t=$(now)
dd if=/dev/zero of="$T/dd.bin" bs=1M count=1024 conv=fsync 2>/dev/null || bb_die "dd failed"
DD_S=$(elapsed "$t" "$(now)")
rm -f "$T/dd.bin"
for part in $PARTS; do
	rm -rf "$T/dst"
	mkdir -p "$T/dst"
	prepare "$T/src/$part"
	t=$(now)
	cp -r "$T/src/$part" "$T/dst/$part" || bb_die "cp failed"
	eval "CP_$part=\$(elapsed \"\$t\" \"\$(now)\")"
	rm -rf "$T/dst"
done

# ---- the origins ----------------------------------------------------------------
if has_origin nginx; then
	bb_start_nginx "$T/src" >/dev/null
	# rclone's http backend parses HTML listings only: a second nginx with the
	# very same configuration but `autoindex_format html` (lib.sh's file, edited).
	NCONF=$BB_TMP/nginx.$HTTP_PORT/nginx.conf
	[ -f "$NCONF" ] || bb_die "cannot find lib.sh's nginx configuration ($NCONF)"
	P2=$(bb_free_port) || bb_die "no free port"
	D2=$BB_TMP/nginx.$P2
	mkdir -p "$D2/tmp"
	sed -e "s|nginx\.$HTTP_PORT/|nginx.$P2/|g" -e "s|127\.0\.0\.1:$HTTP_PORT;|127.0.0.1:$P2;|" \
		-e 's|autoindex_format json;|autoindex_format html;|' "$NCONF" >"$D2/nginx.conf"
	grep -q 'autoindex_format html;' "$D2/nginx.conf" || bb_die "cannot derive the HTML nginx configuration"
	"$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)" -p "$D2/" -c "$D2/nginx.conf" \
		-e "$D2/error.log" -g 'daemon off;' >"$D2/stderr.log" 2>&1 </dev/null &
	NP2=$!
	HTML_URL=http://127.0.0.1:$P2
	i=0
	until curl -s -o /dev/null --max-time 2 "$HTML_URL/"; do
		i=$((i + 1))
		[ "$i" -lt 150 ] && kill -0 "$NP2" 2>/dev/null || { cat "$D2/stderr.log" >&2; bb_die "the HTML nginx did not start"; }
		sleep 0.1
	done
fi

if has_origin s3rver; then
	bb_start_s3rver "$T/s3" >/dev/null
	bb_s3 s3 mb s3://bkt >/dev/null || bb_die "cannot make the bucket"
	t=$(now)
	pids=""
	for part in $PARTS; do # both parts at once: the client is the slower side
		bb_s3 s3 cp --only-show-errors --recursive "$T/src/$part" "s3://bkt/$part/" &
		pids="$pids $!"
	done
	up_fail=0
	for p in $pids; do wait "$p" || up_fail=1; done
	# The upload of both parts at once to s3rver failed now and then, with
	# nothing said under --quiet (the cause is not known yet); once more,
	# one part after the other.
	if [ "$up_fail" = 1 ]; then
		say "the upload to s3rver failed (above); once more"
		kill -0 "$S3_PID" 2>/dev/null || { tail -5 "$S3_LOG" >&2; bb_die "s3rver is gone"; }
		for part in $PARTS; do
			bb_s3 s3 cp --only-show-errors --recursive "$T/src/$part" "s3://bkt/$part/" ||
				bb_die "the upload to s3rver failed again"
		done
	fi
	echo "uploaded to s3rver (aws s3 cp --recursive, the two parts at once) in $(elapsed "$t" "$(now)") s"
fi

# Private AWS configurations: bbcache (path style) and the awscli peer (32 in flight).
printf '[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n' >"$T/aws-bbcache.cfg"
printf '[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n    max_concurrent_requests = %s\n' \
	"$PEER_CONC" >"$T/aws-peer.cfg"
: >"$T/aws-credentials"
s3env() {
	env -u AWS_PROFILE -u AWS_CA_BUNDLE -u AWS_ENDPOINT_URL_S3 \
		AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER \
		AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
		AWS_SHARED_CREDENTIALS_FILE="$T/aws-credentials" \
		AWS_EC2_METADATA_DISABLED=true AWS_PAGER= "$@"
}

# curl's work lists: url + output per object (made here, not timed).
curl_list() { # BASEURL PART > list
	(cd "$T/src/$2" && find . -type f | LC_ALL=C sort) | sed 's|^\./||' |
		while IFS= read -r f; do
			printf 'url = "%s/%s"\noutput = "%s/%s"\n' "$1" "$f" "$T/dst/$2" "$f"
		done
}

# What curl gets for free: the listing, timed alone with the fastest lister.
for part in $PARTS; do
	if has_origin nginx; then
		t=$(now)
		env RCLONE_CONFIG="$T/rclone-none.conf" rclone lsf -R --files-only --http-url "$HTML_URL/$part/" :http: \
			>"$T/ls.nginx.$part" 2>/dev/null || bb_die "listing nginx failed"
		eval "LS_nginx_$part=\$(elapsed \"\$t\" \"\$(now)\")"
	fi
	if has_origin s3rver; then
		t=$(now)
		bb_rclone lsf -R --files-only --fast-list "s3:bkt/$part" >"$T/ls.s3rver.$part" 2>/dev/null ||
			bb_die "listing s3rver failed"
		eval "LS_s3rver_$part=\$(elapsed \"\$t\" \"\$(now)\")"
	fi
done

# ---- the runs ---------------------------------------------------------------------
for part in $PARTS; do
	has_origin nginx && curl_list "$HTTP_URL/$part" "$part" >"$T/curl.nginx.$part"
	has_origin s3rver && curl_list "$S3_ENDPOINT/bkt/$part" "$part" >"$T/curl.s3rver.$part"
done

SRV_PIDS="$HTTP_PID"
has_origin nginx && for part in $PARTS; do for ROUND in $(seq 1 "$ROUNDS"); do
	CLASS=bb
	for j in $BB_JOBS; do
		run nginx "$part" "bbcache --jobs $j" "$BBCACHE" stage-in --jobs "$j" --no-progress \
			"$HTTP_URL/$part/" "$T/dst/$part"
	done
	SRV_PIDS="$NP2" CLASS=peer
	run nginx "$part" "rclone copy --transfers $PEER_CONC" env RCLONE_CONFIG="$T/rclone-none.conf" \
		rclone copy --transfers "$PEER_CONC" --http-url "$HTML_URL/$part/" :http: "$T/dst/$part"
	SRV_PIDS="$HTTP_PID"
	run nginx "$part" "curl -Z max $CURL_PAR" curl --parallel --parallel-max "$CURL_PAR" \
		--fail -sS --create-dirs -K "$T/curl.nginx.$part"
done; done

SRV_PIDS="$S3_PID"
has_origin s3rver && for part in $PARTS; do for ROUND in $(seq 1 "$ROUNDS"); do
	CLASS=bb
	for j in $BB_JOBS; do
		run s3rver "$part" "bbcache --jobs $j" s3env AWS_ENDPOINT_URL="$S3_ENDPOINT" \
			AWS_CONFIG_FILE="$T/aws-bbcache.cfg" "$BBCACHE" stage-in --jobs "$j" --no-progress \
			"s3://bkt/$part/" "$T/dst/$part"
	done
	# bbcache's best --jobs (of the first round), unsigned (the
	# credentials stay in the environment: --no-sign-request ignores
	# them); then, for information, not in the ratios, signed with
	# --verify none: the cost of the MD5-against-ETag check.
	if [ "$ROUND" = 1 ]; then
		best_j=$(awk -F'\t' -v p="$part" '$1 == "s3rver" && $2 == p && $11 == "bb" && $7 == "ok" {
			if (!bt || $4 < bt) { bt = $4; j = $3 } } END { sub(/.* /, "", j); print j }' "$RES")
		[ -n "$best_j" ] || best_j=${BB_JOBS%% *}
	fi
	j=$best_j
	CLASS=bb-anon
	run s3rver "$part" "bbcache -j $j --no-sign-request" s3env AWS_ENDPOINT_URL="$S3_ENDPOINT" \
		AWS_CONFIG_FILE="$T/aws-bbcache.cfg" "$BBCACHE" stage-in --jobs "$j" --no-sign-request \
		--no-progress "s3://bkt/$part/" "$T/dst/$part"
	CLASS=info
	run s3rver "$part" "bbcache -j $j --verify none" s3env AWS_ENDPOINT_URL="$S3_ENDPOINT" \
		AWS_CONFIG_FILE="$T/aws-bbcache.cfg" "$BBCACHE" stage-in --jobs "$j" --verify none --no-progress \
		"s3://bkt/$part/" "$T/dst/$part"
	CLASS=peer
	run s3rver "$part" "aws s3 sync (max_conc $PEER_CONC)" s3env AWS_CONFIG_FILE="$T/aws-peer.cfg" \
		"$BB_AWS" --endpoint-url "$S3_ENDPOINT" s3 sync --only-show-errors --no-progress \
		"s3://bkt/$part/" "$T/dst/$part"
	run s3rver "$part" "rclone copy --transfers $PEER_CONC" bb_rclone copy --transfers "$PEER_CONC" \
		--fast-list "s3:bkt/$part" "$T/dst/$part"
	# The same URL list signed: what a user of a real S3 would have to run
	# (x-amz-content-sha256 is required by S3; s3rver ignores it).
	run s3rver "$part" "curl --aws-sigv4 -Z max $CURL_PAR" curl --parallel --parallel-max "$CURL_PAR" \
		--fail -sS --create-dirs --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -K "$T/curl.s3rver.$part"
	CLASS=peer-anon
	run s3rver "$part" "curl unsigned -Z max $CURL_PAR" curl --parallel --parallel-max "$CURL_PAR" \
		--fail -sS --create-dirs -K "$T/curl.s3rver.$part"
done; done

# The median run of every tool (of an even count, the faster middle one),
# in the columns of $RES; failed runs are left out.
MED=$T/medians
awk -F'\t' -v OFS='\t' '$7 == "ok" { k = $1 SUBSEP $2 SUBSEP $3; n = ++cnt[k]; row[k, n] = $0; t[k, n] = $4 + 0
	if (n == 1) order[++nk] = k }
	END { for (i = 1; i <= nk; i++) { k = order[i]; n = cnt[k]
		for (a = 1; a <= n; a++) idx[a] = a
		for (a = 2; a <= n; a++) for (b = a; b > 1 && t[k, idx[b]] < t[k, idx[b - 1]]; b--) {
			x = idx[b]; idx[b] = idx[b - 1]; idx[b - 1] = x }
		print row[k, idx[int((n + 1) / 2)]] } }' "$RES" >"$MED"

# ---- the report -------------------------------------------------------------------
TOTAL=$(elapsed "$T0" "$(now)")
echo
echo "bbcache stage-in summaries (its own stderr line):"
awk -F'\t' -v r="$ROUNDS" '$3 ~ /^bbcache/ { print $1 "\t" $2 "\t" $3 (r > 1 ? " #" $12 : "") "\t" $10 }' "$RES" |
	while IFS="$(printf '\t')" read -r o p tl lg; do
		printf '  %-6s %-5s %-31s %s\n' "$o" "$p" "$tl" "$(grep -m1 'bbcache stage-in' "$lg.err")"
	done
echo
echo "Physical references (same run):"
awk -v s="$DD_S" 'BEGIN { printf "  local disk write, dd 1 GiB conv=fsync:     %7.2f s  %8.0f MB/s\n", s, 1073741824 / s / 1e6 }'
for part in $PARTS; do
	eval "n=\$N_$part by=\$BYTES_$part s=\$CP_$part"
	awk -v p="$part" -v n="$n" -v b="$by" -v s="$s" 'BEGIN {
		printf "  cp -r of the %-5s part (cache to disk):   %7.2f s  %8.0f MB/s  %8.0f files/s\n", p, s, b / s / 1e6, n / s }'
done
for part in $PARTS; do
	for o in $RUN_ORIGINS; do
		eval "s=\$LS_${o}_$part"
		awk -v o="$o" -v p="$part" -v s="$s" -v n="$(wc -l <"$T/ls.$o.$part")" 'BEGIN {
			printf "  listing %-6s %-5s (rclone lsf -R):       %7.2f s  (%d files, incl. rclone start; curl is handed the list, untimed)\n", o, p, s, n }'
	done
done
awk -F'\t' '$1 == "nginx" && $7 == "ok" { r = $5 / $4; if (r > best) { best = r; t = $3; p = $2 } }
	END { if (best) printf "  nginx serving rate: not measured (no load generator); at least %.0f files/s (%s, %s part)\n", best, t, p }' "$RES"
echo
results_table() { # FILE
	printf '%-7s %-5s %-31s %5s %8s %9s %8s %7s %7s %9s  %s\n' origin part tool round time_s files/s MB/s \
		cli_cpu srv_cpu srv_cpu_s verified
	awk -F'\t' '{ f = $5 / $4
		printf "%-7s %-5s %-31s %5s %8.2f %9." (f < 100 ? 2 : 0) "f %8.0f %6s%% %6s%% %9.2f  %s\n", $1, $2, $3, $12, $4, f,
			$6 / $4 / 1e6, $8, $9, $4 * $9 / 100, $7 }' "$1"
}
echo "Results (MB = 10^6 bytes; time = wall clock of the tool; cpu = % of one core, client / server):"
results_table "$RES"
echo "(srv_cpu_s: the server's CPU seconds for the run; --verify none rows: for information, not in the ratios)"
if [ "$ROUNDS" -gt 1 ]; then
	echo
	echo "The median run of each tool over $ROUNDS rounds (these make the ratios):"
	results_table "$MED"
fi
echo
echo "Ratios (speed of bbcache's best --jobs / speed of the fastest verified peer; on s3rver"
echo "signed against signed, unsigned against unsigned$([ "$ROUNDS" -gt 1 ] && echo "; median runs of $ROUNDS rounds")):"
for o in $RUN_ORIGINS; do
	for part in $PARTS; do
		eval "ls=\$LS_${o}_$part"
		for kind in signed unsigned; do
			[ "$o" = nginx ] && [ "$kind" = unsigned ] && continue
			suffix=""
			[ "$kind" = unsigned ] && suffix=-anon
			awk -F'\t' -v o="$o" -v p="$part" -v ls="$ls" -v sfx="$suffix" \
				-v kind="$([ "$o" = s3rver ] && echo "$kind" || echo "")" '
			$1 == o && $2 == p && $7 == "ok" {
				if ($11 == "bb" sfx) { if (!bt || $4 < bt) { bt = $4; bn = $3 } }
				else if ($11 == "peer" sfx) { if (!pt || $4 < pt) { pt = $4; pn = $3 } }
			}
			END {
				target = (o == "nginx") ? 1.5 : 0.95
				if (!bt || !pt) { printf "  %-6s %-5s %-8s: incomplete (a run failed)\n", o, p, kind; exit }
				r = pt / bt
				printf "  %-6s %-5s %-8s: %-31s %7.2f s vs %-31s %7.2f s = %5.2fx  (target >= %.2fx: %s)\n",
					o, p, kind, bn, bt, pn, pt, r, target, (r >= target) ? "met" : "MISSED"
				if (pn ~ /^curl/)
					printf "  %-6s %-5s %-8s  (curl with the listing time added, %.2f s: %5.2fx)\n", o, p, kind, pt + ls, (pt + ls) / bt
			}' "$MED"
		done
	done
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "total time: $TOTAL s"
[ "$FAILS" -eq 0 ] || { echo "bench_stage: $FAILS run(s) failed or did not verify" >&2; exit 1; }
exit 0
