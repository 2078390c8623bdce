#!/bin/sh
# libbbcache_preload.so links libc only (readelf -d NEEDED: libc, and
# libpthread/libdl/ld-linux at most: no libcurl, OpenSSL, MPI, libnuma), it
# exports every symbol of the one list mpi-io/preload_syms.h (the X(...)
# lines), and docs/interposer.md names every one of them.  In a sanitizer
# build the ASan/UBSan runtimes are NEEDED as well, and allowed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=${BB_TOP_SRCDIR:-$(cd "$here/../.." && pwd)}
die() { echo "FAIL: $*" >&2; exit 1; }
for c in readelf nm awk sed; do
	command -v "$c" >/dev/null 2>&1 || die "this test needs '$c' (Debian: binutils / coreutils)"
done
SO=${BB_PRELOAD:-}
if [ -z "$SO" ]; then
	for b in "$here/../.." "$here/../../_build/ci" "${BUILD_DIR:-/nonexistent}"; do
		[ -f "$b/mpi-io/.libs/libbbcache_preload.so" ] && SO=$b/mpi-io/.libs/libbbcache_preload.so && break
	done
fi
[ -f "${SO:-}" ] || die "libbbcache_preload.so not found: build first, or set BB_PRELOAD"
SYMS=$top/mpi-io/preload_syms.h
DOC=$top/docs/interposer.md
[ -f "$SYMS" ] || die "$SYMS not found: set BB_TOP_SRCDIR"

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
bad() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }

echo "# $SO"
needed=$(readelf -d "$SO" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[ -n "$needed" ] && ok "readelf -d lists the NEEDED libraries: $(echo $needed)" || bad "readelf -d lists NEEDED libraries"
san=0
case $needed in *libasan*) san=1 ;; esac
allowed='^(libc\.so\.6|libpthread\.so\.0|libdl\.so\.2|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1|ld-linux\.so\.[23])$'
[ "$san" = 1 ] && allowed='^(libc\.so\.6|libpthread\.so\.0|libdl\.so\.2|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1|ld-linux\.so\.[23]|libasan\.so\.[0-9]+|libubsan\.so\.[0-9]+)$'
extra=$(echo "$needed" | grep -Ev "$allowed" | tr '\n' ' ')
if [ -z "$extra" ]; then
	note=""
	[ "$san" = 1 ] && note=" (sanitizer build: libasan, libubsan allowed)"
	ok "NEEDED is libc/libpthread/libdl/ld-linux only$note"
else
	bad "NEEDED is libc/libpthread/libdl/ld-linux only: also $extra"
fi
for lib in libcurl libssl libcrypto libmpi libnuma libpmix libexpat libstdc; do
	if echo "$needed" | grep -q "^$lib"; then bad "no $lib"; else ok "no $lib"; fi
done

# The symbol list: every X(HOW, ret, NAME, ...) line of PL_SYMBOLS.
list=$(sed -n 's/^[[:space:]]*X([[:space:]]*\(GEN\|HAND\)[[:space:]]*,[^,]*,[[:space:]]*\([A-Za-z0-9_]*\)[[:space:]]*,.*/\2/p' "$SYMS")
count=$(echo "$list" | grep -c .)
sentinels="open openat __open_2 read __read_chk pread64 readv copy_file_range mmap dup2 fcntl statx __xstat64 fstatat64 readdir64 opendir fopen execve"
nosent=""
for s in $sentinels; do echo "$list" | grep -qx "$s" || nosent="$nosent $s"; done
if [ "$count" -ge 50 ] && [ -z "$nosent" ]; then
	ok "preload_syms.h lists $count symbols, among them $sentinels"
else
	bad "preload_syms.h lists the symbols real programs use ($count parsed; missing:$nosent)"
fi
xlines=$(grep -c '^[[:space:]]*X(' "$SYMS")
if [ "$xlines" -eq "$count" ]; then ok "every X( line parsed ($xlines)"; else bad "every X( line parsed ($count of $xlines)"; fi
dups=$(echo "$list" | sort | uniq -d | tr '\n' ' ')
if [ -z "$dups" ]; then ok "no symbol listed twice"; else bad "no symbol listed twice: $dups"; fi

exports=$(nm -D --defined-only "$SO" | awk '$2 ~ /^[TtWwiI]$/ { print $3 }' | sed 's/@.*//' | sort -u)
missing=""
for s in $list; do
	echo "$exports" | grep -qx "$s" || missing="$missing $s"
done
if [ -z "$missing" ]; then ok "nm -D exports all $count symbols"; else bad "nm -D exports every listed symbol; missing:$missing"; fi
# Nothing else leaks out (the compiled-in libraries are hidden), sanitizer
# builds aside (the runtimes add their own).
others=$(echo "$exports" | grep -vxF "$(echo "$list")" | grep -Ev '^(_init|_fini|__bss_start|_edata|_end)$' | tr '\n' ' ')
if [ "$san" = 1 ] || [ -z "$others" ]; then
	note=""
	[ "$san" = 1 ] && note=" (sanitizer build: the runtimes' symbols not checked)"
	ok "no other symbol is exported$note"
else
	bad "no other symbol is exported: $others"
fi

if [ ! -f "$DOC" ]; then
	bad "docs/interposer.md exists (it must list every interposed symbol)"
else
	ok "docs/interposer.md exists"
	undoc=""
	for s in $list; do
		grep -q "\`$s\`" "$DOC" || undoc="$undoc $s"
	done
	if [ -z "$undoc" ]; then ok "docs/interposer.md names all $count symbols (as \`name\`)"; else bad "docs/interposer.md names every symbol; missing:$undoc"; fi
fi

echo "1..$n"
echo "$(basename "$0"): $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
