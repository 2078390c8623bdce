# tests/origins/lib.sh — start and stop the real origin servers of the origin
# tests and benchmarks (s3rver, nginx, python3 -m http.server, faultsrv.py),
# all on 127.0.0.1, all under one private temporary directory.
# POSIX sh; source it, then register the cleanup:
#
#   . "$top/tests/origins/lib.sh"
#   trap bb_stop_all EXIT
#
# Call the bb_start_* functions from the test's main shell (not inside $(...)
# or a pipeline): they export variables and record the pids to stop.
# A server or tool that is missing or does not start makes the test FAIL
# (exit 1 with the reason), never skip. See docs/testing.md.

# Where faultsrv.py is: $BB_ORIGINS_DIR if set, else found from the sourcing
# script's place ($0), $top or automake's $srcdir.
if [ -z "${BB_ORIGINS_DIR:-}" ] || [ ! -f "$BB_ORIGINS_DIR/faultsrv.py" ]; then
	_bb_here=$(dirname "$0")
	for _bb_d in "$_bb_here" "$_bb_here/../origins" "$_bb_here/../tests/origins" \
		"$_bb_here/../../tests/origins" "${top:-.}/tests/origins" \
		"${srcdir:-.}/origins" "${srcdir:-.}/tests/origins" . tests/origins; do
		if [ -f "$_bb_d/faultsrv.py" ]; then
			BB_ORIGINS_DIR=$(cd "$_bb_d" && pwd)
			break
		fi
	done
fi
BB_PYTHON=${BB_PYTHON:-/usr/bin/python3}
BB_S3RVER_JS=${BB_S3RVER_JS:-/opt/bbcache-test/node_modules/s3rver/bin/s3rver.js}
BB_AWS=${BB_AWS:-/usr/bin/aws}
# Per sourcing shell, never inherited: a child test has its own.
BB_PIDS=""
BB_TMP=""

# Checks, one line each ("ok N - what" / "not ok N - what"); a test ends
# with bb_checks_done, which prints the count and fails if any check did.
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok $((passed + failed)) - $*"; }
bad() { failed=$((failed + 1)); echo "not ok $((passed + failed)) - $*"; }
check() { _d=$1; shift; if "$@"; then ok "$_d"; else bad "$_d"; fi; } # DESC COMMAND...
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (got '$2', want '$3')"; fi; } # DESC GOT WANT
contains() { # DESC FILE TEXT
	if grep -qF -- "$3" "$2"; then ok "$1"; else bad "$1 (no '$3' in:)"; sed 's/^/    /' "$2" | tail -n 8; fi
}
bb_checks_done() {
	echo "$(basename "$0"): $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

bb_log() { printf '%s\n' "origins: $*" >&2; }

# bb_die MESSAGE... — fail the test: message to stderr, exit 1.
bb_die() {
	printf '%s\n' "FAIL: $*" >&2
	exit 1
}

bb__init() {
	if [ -z "$BB_TMP" ] || [ ! -d "$BB_TMP" ]; then
		BB_TMP=$(mktemp -d "${TMPDIR:-/tmp}/bbcache-origins.XXXXXX") ||
			bb_die "cannot make a temporary directory under ${TMPDIR:-/tmp}"
	fi
}

# bb_tmpdir — the private temporary directory (removed by bb_stop_all).
bb_tmpdir() { bb__init; printf '%s\n' "$BB_TMP"; }

# bb_require CMD — fail (exit 1) naming the Debian package if CMD is missing.
# Also knows: s3rver (npm, /opt/bbcache-test), botocore (awscli).
bb_require() {
	_bb_c=$1
	case $_bb_c in
	aws) _bb_pkg=awscli; [ -x "$BB_AWS" ] && return 0 ;;
	python3) _bb_pkg=python3; [ -x "$BB_PYTHON" ] && return 0 ;;
	nginx) _bb_pkg=nginx-light
		{ command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } && return 0 ;;
	node) _bb_pkg=nodejs; command -v node >/dev/null 2>&1 && return 0 ;;
	s3rver)
		bb_require node
		[ -f "$BB_S3RVER_JS" ] && return 0
		bb_die "s3rver is not installed at $BB_S3RVER_JS (npm package s3rver@3.7.1): run contrib/install-deps.sh as root" ;;
	botocore)
		bb_require python3
		"$BB_PYTHON" -c 'import awscli, botocore.auth' >/dev/null 2>&1 && return 0
		bb_die "python3 cannot import botocore: install the Debian package awscli (contrib/install-deps.sh)" ;;
	curl | rclone | npm) _bb_pkg=$_bb_c; command -v "$_bb_c" >/dev/null 2>&1 && return 0 ;;
	sha256sum | mktemp | find | sort | xargs) _bb_pkg="coreutils/findutils"
		command -v "$_bb_c" >/dev/null 2>&1 && return 0 ;;
	ps) _bb_pkg=procps; command -v ps >/dev/null 2>&1 && return 0 ;;
	*) _bb_pkg="the package that provides $_bb_c"
		command -v "$_bb_c" >/dev/null 2>&1 && return 0 ;;
	esac
	bb_die "this test needs '$_bb_c', from the Debian package $_bb_pkg: run contrib/install-deps.sh as root"
}

# bb_free_port — print a TCP port free on 127.0.0.1 (picked by the kernel).
bb_free_port() {
	"$BB_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

bb__alive() { # pid: running (not a zombie)?
	[ -r "/proc/$1/stat" ] || return 1
	_bb_state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$_bb_state" ] && [ "$_bb_state" != Z ] && [ "$_bb_state" != X ]
}

bb__descendants() { # pid: print all descendant pids
	for _bb_ch in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		echo "$_bb_ch"
		bb__descendants "$_bb_ch"
	done
}

bb__track() { BB_PIDS="$BB_PIDS $1"; }

# bb_pids — the pids started so far, with their descendants (nginx workers).
bb_pids() {
	for _bb_p in $BB_PIDS; do
		echo "$_bb_p"
		bb__descendants "$_bb_p"
	done
}

# bb__wait_http NAME PID URL LOG [CURLOPT] — wait up to 15 s for URL to answer.
bb__wait_http() {
	_bb_i=0
	while [ "$_bb_i" -lt 150 ]; do
		if ! bb__alive "$2"; then
			bb_log "$1 exited at start; its log ($4):"
			cat "$4" >&2 2>/dev/null
			bb_die "$1 did not start"
		fi
		# shellcheck disable=SC2086  # $5: one optional curl option
		if curl -s -o /dev/null --max-time 2 ${5:-} "$3" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
		_bb_i=$((_bb_i + 1))
	done
	bb_log "$1 did not answer $3 within 15 s; its log ($4):"
	cat "$4" >&2 2>/dev/null
	bb_die "$1 did not start"
}

# bb_start_s3rver DIR — s3rver on 127.0.0.1 with its data in DIR.
# Exports S3_PORT S3_ENDPOINT S3_PID S3_LOG AWS_ACCESS_KEY_ID
# AWS_SECRET_ACCESS_KEY AWS_REGION AWS_DEFAULT_REGION; prints S3_ENDPOINT.
bb_start_s3rver() {
	[ $# -ge 1 ] || bb_die "usage: bb_start_s3rver DIR"
	bb_require s3rver
	bb_require curl
	bb__init
	mkdir -p "$1" || bb_die "cannot make $1"
	S3_PORT=$(bb_free_port) || bb_die "no free port"
	S3_LOG="$BB_TMP/s3rver.$S3_PORT.log"
	NODE_OPTIONS=--openssl-legacy-provider node "$BB_S3RVER_JS" -d "$1" \
		-a 127.0.0.1 -p "$S3_PORT" --silent >"$S3_LOG" 2>&1 </dev/null &
	S3_PID=$!
	bb__track "$S3_PID"
	S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
	bb__wait_http s3rver "$S3_PID" "$S3_ENDPOINT/" "$S3_LOG"
	AWS_ACCESS_KEY_ID=S3RVER
	AWS_SECRET_ACCESS_KEY=S3RVER
	AWS_REGION=us-east-1
	AWS_DEFAULT_REGION=us-east-1
	export S3_PORT S3_ENDPOINT S3_PID S3_LOG AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY \
		AWS_REGION AWS_DEFAULT_REGION
	bb_log "s3rver on $S3_ENDPOINT (pid $S3_PID, data $1)"
	printf '%s\n' "$S3_ENDPOINT"
}

bb__aws_config() {
	bb__init
	if [ ! -f "$BB_TMP/aws-config" ]; then
		cat >"$BB_TMP/aws-config" <<-EOF
		[default]
		region = ${AWS_REGION:-us-east-1}
		s3 =
		    addressing_style = path
		EOF
		: >"$BB_TMP/aws-credentials"
	fi
}

# bb_s3 ARGS... — /usr/bin/aws --endpoint-url "$S3_ENDPOINT" ARGS, e.g.
#   bb_s3 s3 mb s3://bucket;  bb_s3 s3api list-objects-v2 --bucket b
# with the s3rver credentials, path-style addressing and no user config.
# Set BB_S3_ENDPOINT to talk through another endpoint (e.g. faultsrv).
bb_s3() {
	bb_require aws
	bb__aws_config
	env -u AWS_PROFILE -u AWS_CA_BUNDLE -u AWS_ENDPOINT_URL \
		AWS_CONFIG_FILE="$BB_TMP/aws-config" \
		AWS_SHARED_CREDENTIALS_FILE="$BB_TMP/aws-credentials" \
		AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-S3RVER}" \
		AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-S3RVER}" \
		AWS_REGION="${AWS_REGION:-us-east-1}" \
		AWS_DEFAULT_REGION="${AWS_REGION:-us-east-1}" \
		AWS_EC2_METADATA_DISABLED=true AWS_PAGER= \
		"$BB_AWS" --endpoint-url "${BB_S3_ENDPOINT:-$S3_ENDPOINT}" "$@"
}

# bb_rclone ARGS... — rclone with a remote named "s3:" on the s3rver (or
# BB_S3_ENDPOINT), e.g. bb_rclone copy --transfers 32 s3:bucket/dir DEST
bb_rclone() {
	bb_require rclone
	bb__init
	env -u AWS_CA_BUNDLE RCLONE_CONFIG="$BB_TMP/rclone.conf" \
		RCLONE_CONFIG_S3_TYPE=s3 RCLONE_CONFIG_S3_PROVIDER=Other \
		RCLONE_CONFIG_S3_ENV_AUTH=false \
		RCLONE_CONFIG_S3_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-S3RVER}" \
		RCLONE_CONFIG_S3_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-S3RVER}" \
		RCLONE_CONFIG_S3_REGION="${AWS_REGION:-us-east-1}" \
		RCLONE_CONFIG_S3_ENDPOINT="${BB_S3_ENDPOINT:-$S3_ENDPOINT}" \
		RCLONE_CONFIG_S3_FORCE_PATH_STYLE=true \
		rclone "$@"
}

# bb_start_nginx ROOT — nginx serving ROOT on 127.0.0.1 with a private
# config: Range, strong-enough ETags (nginx's), sendfile, keep-alive and
# `autoindex on; autoindex_format json;` for paths ending in '/'.
# Exports HTTP_PORT HTTP_URL HTTP_PID HTTP_LOG (access log) HTTP_ERRLOG;
# prints HTTP_URL.
# bb_start_nginx ROOT CERT KEY — the same, and also HTTPS (TLS with CERT and
# KEY, HTTP/2 offered by ALPN) on a second port: exports HTTPS_PORT HTTPS_URL.
bb_start_nginx() {
	[ $# -eq 1 ] || [ $# -eq 3 ] || bb_die "usage: bb_start_nginx ROOT [CERT KEY]"
	bb_require nginx
	bb_require curl
	bb__init
	[ -d "$1" ] || bb_die "bb_start_nginx: $1 is not a directory"
	_bb_root=$(cd "$1" && pwd)
	_bb_nginx=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
	HTTP_PORT=$(bb_free_port) || bb_die "no free port"
	_bb_d="$BB_TMP/nginx.$HTTP_PORT"
	mkdir -p "$_bb_d/tmp" || bb_die "cannot make $_bb_d"
	_bb_user=""
	# As root, workers would run as nobody and could not enter 0700 dirs.
	[ "$(id -u)" -eq 0 ] && _bb_user="user root root;"
	HTTP_LOG="$_bb_d/access.log"
	HTTP_ERRLOG="$_bb_d/error.log"
	_bb_tls=""
	if [ $# -eq 3 ]; then
		HTTPS_PORT=$(bb_free_port) || bb_die "no free port"
		[ "$HTTPS_PORT" != "$HTTP_PORT" ] || HTTPS_PORT=$(bb_free_port) || bb_die "no free port"
		_bb_tls="server {
	        listen 127.0.0.1:$HTTPS_PORT ssl http2;
	        server_name localhost;
	        ssl_certificate $2;
	        ssl_certificate_key $3;
	        root $_bb_root;
	        etag on;
	        location / {
	            autoindex on;
	            autoindex_format json;
	        }
	    }"
	fi
	cat >"$_bb_d/nginx.conf" <<-EOF
	$_bb_user
	worker_processes 2;
	pid $_bb_d/nginx.pid;
	error_log $HTTP_ERRLOG warn;
	events { worker_connections 4096; }
	http {
	    access_log $HTTP_LOG combined buffer=64k flush=1s;
	    client_body_temp_path $_bb_d/tmp/body;
	    proxy_temp_path $_bb_d/tmp/proxy;
	    fastcgi_temp_path $_bb_d/tmp/fastcgi;
	    uwsgi_temp_path $_bb_d/tmp/uwsgi;
	    scgi_temp_path $_bb_d/tmp/scgi;
	    default_type application/octet-stream;
	    sendfile on;
	    tcp_nopush on;
	    tcp_nodelay on;
	    keepalive_timeout 65;
	    keepalive_requests 1000000;
	    server {
	        listen 127.0.0.1:$HTTP_PORT;
	        server_name localhost;
	        root $_bb_root;
	        etag on;
	        location / {
	            autoindex on;
	            autoindex_format json;
	        }
	    }
	    $_bb_tls
	}
	EOF
	"$_bb_nginx" -p "$_bb_d/" -c "$_bb_d/nginx.conf" -e "$HTTP_ERRLOG" \
		-g 'daemon off;' >"$_bb_d/stderr.log" 2>&1 </dev/null &
	HTTP_PID=$!
	bb__track "$HTTP_PID"
	HTTP_URL="http://127.0.0.1:$HTTP_PORT"
	bb__wait_http nginx "$HTTP_PID" "$HTTP_URL/" "$_bb_d/stderr.log"
	export HTTP_PORT HTTP_URL HTTP_PID HTTP_LOG HTTP_ERRLOG
	if [ $# -eq 3 ]; then
		HTTPS_URL="https://127.0.0.1:$HTTPS_PORT"
		bb__wait_http "nginx (TLS)" "$HTTP_PID" "$HTTPS_URL/" "$_bb_d/stderr.log" --insecure
		export HTTPS_PORT HTTPS_URL
	fi
	bb_log "nginx on $HTTP_URL${HTTPS_URL:+ and $HTTPS_URL} (pid $HTTP_PID, root $_bb_root)"
	printf '%s\n' "$HTTP_URL"
}

# bb_start_pyhttp ROOT — python3 -m http.server on 127.0.0.1 serving ROOT:
# HTTP/1.0, no Range support (always 200), HTML listings.
# Exports PYHTTP_PORT PYHTTP_URL PYHTTP_PID PYHTTP_LOG; prints PYHTTP_URL.
bb_start_pyhttp() {
	[ $# -ge 1 ] || bb_die "usage: bb_start_pyhttp ROOT"
	bb_require python3
	bb_require curl
	bb__init
	[ -d "$1" ] || bb_die "bb_start_pyhttp: $1 is not a directory"
	PYHTTP_PORT=$(bb_free_port) || bb_die "no free port"
	PYHTTP_LOG="$BB_TMP/pyhttp.$PYHTTP_PORT.log"
	"$BB_PYTHON" -m http.server --bind 127.0.0.1 --directory "$1" "$PYHTTP_PORT" \
		>"$PYHTTP_LOG" 2>&1 </dev/null &
	PYHTTP_PID=$!
	bb__track "$PYHTTP_PID"
	PYHTTP_URL="http://127.0.0.1:$PYHTTP_PORT"
	bb__wait_http "python3 -m http.server" "$PYHTTP_PID" "$PYHTTP_URL/" "$PYHTTP_LOG"
	export PYHTTP_PORT PYHTTP_URL PYHTTP_PID PYHTTP_LOG
	bb_log "python3 http.server on $PYHTTP_URL (pid $PYHTTP_PID, root $1)"
	printf '%s\n' "$PYHTTP_URL"
}

# bb_start_faultsrv ARGS... — tests/origins/faultsrv.py on 127.0.0.1 with
# ARGS (--serve DIR | --upstream URL [--sigv4-check] ...).
# Exports FAULT_PORT FAULT_URL FAULT_PID FAULT_LOG; prints FAULT_URL.
# A second call replaces these variables: save them first.
bb_start_faultsrv() {
	[ $# -ge 2 ] || bb_die "usage: bb_start_faultsrv --serve DIR | --upstream URL [--sigv4-check]"
	bb_require python3
	bb_require curl
	for _bb_a in "$@"; do
		[ "$_bb_a" = --sigv4-check ] && bb_require botocore
	done
	bb__init
	[ -f "${BB_ORIGINS_DIR:-}/faultsrv.py" ] ||
		bb_die "faultsrv.py not found: set BB_ORIGINS_DIR to tests/origins"
	_bb_pf="$BB_TMP/faultsrv.$$.$(date +%s%N).port"
	FAULT_LOG="${_bb_pf%.port}.log"
	"$BB_PYTHON" "$BB_ORIGINS_DIR/faultsrv.py" --bind 127.0.0.1 --port 0 \
		--port-file "$_bb_pf" --log "$FAULT_LOG" "$@" >"${_bb_pf%.port}.out" 2>&1 </dev/null &
	FAULT_PID=$!
	bb__track "$FAULT_PID"
	_bb_i=0
	while [ ! -s "$_bb_pf" ]; do
		if ! bb__alive "$FAULT_PID" || [ "$_bb_i" -ge 150 ]; then
			cat "${_bb_pf%.port}.out" "$FAULT_LOG" >&2 2>/dev/null
			bb_die "faultsrv.py $* did not start"
		fi
		sleep 0.1
		_bb_i=$((_bb_i + 1))
	done
	FAULT_PORT=$(cat "$_bb_pf")
	FAULT_URL="http://127.0.0.1:$FAULT_PORT"
	bb__wait_http faultsrv "$FAULT_PID" "$FAULT_URL/__stats" "$FAULT_LOG"
	export FAULT_PORT FAULT_URL FAULT_PID FAULT_LOG
	bb_log "faultsrv on $FAULT_URL (pid $FAULT_PID, $*)"
	printf '%s\n' "$FAULT_URL"
}

# bb_fault JSON [URL] — add fault rule(s) to the faultsrv at URL ($FAULT_URL).
bb_fault() {
	curl -sS --fail-with-body -X POST -H 'Content-Type: application/json' \
		--data-binary "$1" "${2:-$FAULT_URL}/__fault" >/dev/null ||
		bb_die "faultsrv refused fault rule $1"
}

# bb_fault_reset [URL] — clear rules and counters.
bb_fault_reset() {
	curl -sS --fail -X POST "${1:-$FAULT_URL}/__reset" >/dev/null || bb_die "faultsrv /__reset failed"
}

# bb_fault_stats [URL] — print the /__stats JSON.
bb_fault_stats() { curl -sS --fail "${1:-$FAULT_URL}/__stats?log=1" || bb_die "faultsrv /__stats failed"; }

# bb_fault_stat PYEXPR [URL] — evaluate a python expression over the stats
# dict `s` and print it; a missing key prints 0. E.g.
#   bb_fault_stat 's["faults"]["reset"]'; bb_fault_stat 's["by_path"]["/b/k"]["GET"]'
bb_fault_stat() {
	bb_fault_stats "${2:-$FAULT_URL}" | "$BB_PYTHON" -c 'import json, sys
s = json.load(sys.stdin)
try:
    v = eval(sys.argv[1], {"s": s})
except (KeyError, IndexError):
    v = 0
print(json.dumps(v) if isinstance(v, (dict, list)) else v)' "$1"
}

# bb_make_dataset DIR N SIZE [SEED] — N deterministic pseudo-random files
# under DIR in nested directories (dNN/dNN/file-NNNNNN.bin). SIZE is bytes
# with an optional K/M/G suffix (KiB...), or MIN-MAX for sizes spread
# deterministically over that range (0 allowed). Same arguments, same bytes.
bb_make_dataset() {
	[ $# -ge 3 ] || bb_die "usage: bb_make_dataset DIR N SIZE [SEED]"
	bb_require python3
	"$BB_PYTHON" - "$@" <<-'EOF' || bb_die "bb_make_dataset $* failed"
	import os, random, sys
	def size(s):
	    s = s.strip().upper().rstrip("B").rstrip("I")
	    m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
	    return int(s[:-1]) * m[s[-1]] if s and s[-1] in m else int(s)
	top, n, spec = sys.argv[1], int(sys.argv[2]), sys.argv[3]
	seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
	if "-" in spec:
	    lo, hi = (size(x) for x in spec.split("-", 1))
	else:
	    lo = hi = size(spec)
	for i in range(n):
	    rng = random.Random(seed * 1000003 + i)
	    sz = lo if lo == hi else rng.randint(lo, hi)
	    d = os.path.join(top, "d%02d" % (i % 7), "d%02d" % ((i // 7) % 5))
	    os.makedirs(d, exist_ok=True)
	    with open(os.path.join(d, "file-%06d.bin" % i), "wb") as f:
	        left = sz
	        while left > 0:
	            k = min(left, 1 << 22)
	            f.write(rng.randbytes(k))
	            left -= k
	EOF
}

# bb_sha_tree DIR — "sha256  ./relative/path" of every file, sorted by path:
# compare two trees byte for byte with `[ "$(bb_sha_tree a)" = "$(bb_sha_tree b)" ]`.
bb_sha_tree() {
	[ -d "$1" ] || bb_die "bb_sha_tree: $1 is not a directory"
	(cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

# bb_stop_all — stop everything started here (by pid, with descendants:
# TERM, then KILL after 5 s), then remove the private temporary directory.
# Safe to call more than once.
bb_stop_all() {
	_bb_all=$(bb_pids)
	if [ -n "$_bb_all" ]; then
		# shellcheck disable=SC2086
		kill -TERM $_bb_all 2>/dev/null
		_bb_i=0
		while [ "$_bb_i" -lt 50 ]; do
			_bb_left=""
			for _bb_p in $_bb_all; do
				bb__alive "$_bb_p" && _bb_left="$_bb_left $_bb_p"
			done
			[ -z "$_bb_left" ] && break
			sleep 0.1
			_bb_i=$((_bb_i + 1))
		done
		if [ -n "$_bb_left" ]; then
			bb_log "killing$_bb_left (did not stop on SIGTERM)"
			# shellcheck disable=SC2086
			kill -KILL $_bb_left 2>/dev/null
		fi
		for _bb_p in $BB_PIDS; do
			# || true: under set -e, the status of a killed child must
			# not end the clean-up half-way.
			wait "$_bb_p" 2>/dev/null || true
		done
	fi
	BB_PIDS=""
	if [ -n "$BB_TMP" ] && [ -d "$BB_TMP" ]; then
		rm -rf "$BB_TMP"
	fi
	return 0
}

bb__init
