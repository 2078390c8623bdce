#!/bin/sh
# Real programs read a staged dataset through libbbcache_preload.so, byte
# for byte: cat, cp (copy_file_range), cp -r, dd (dup2; `dd < file`), ls -l
# (statx), find, tar, sha256sum, Python (open().read(), os.scandir, os.stat,
# os.listdir, os.walk, threads sharing a descriptor), PIL, and a PyTorch
# DataLoader with two forked workers over a torchvision ImageFolder.  Staged paths are read-only
# (EROFS), missing ones ENOENT, paths outside the datasets pass through.
# strace shows that a hot read makes no read()/pread64() on the file and a
# stat of a staged path no stat system call on it.
#
# The dataset (a few hundred files of mixed sizes in nested directories, a
# 9 MiB file over three 4 MiB blocks, an empty file, PNG/JPEG images) is
# served by nginx on 127.0.0.1 and staged by the real agent
# (bbcache stage-in --async); the tests run once staging is complete.
. "$(dirname "$0")/common.sh"
for c in nginx python3 curl strace tar find sha256sum dd cmp diff xargs stat; do bb_require "$c"; done
"$BB_PYTHON" -c 'import PIL, torch, torchvision' >/dev/null 2>&1 ||
	bb_die "$BB_PYTHON cannot import PIL, torch, torchvision: install the Debian packages python3-pil python3-torch python3-torchvision (contrib/install-deps.sh)"

S=$T/src/ds
bb_make_dataset "$S" 240 0-64K 3
bb_make_dataset "$S/mid" 12 100K-1500K 4
mkdir -p "$S/big" "$S/empty"
"$BB_PYTHON" -c 'import random, sys
open(sys.argv[1], "wb").write(random.Random(9).randbytes(9 * 1048576 + 12345))' "$S/big/huge.bin"
: >"$S/empty/empty.bin"
"$BB_PYTHON" "$PYCLIENT" gen "$S/images" || bb_die "cannot generate the images"
(cd "$S" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) >"$T/files"
nfiles=$(wc -l <"$T/files" | tr -d ' ')
bb_start_nginx "$T/src" >/dev/null

J=$(pl_job_base 1)
D=$T/job$J
mkdir -p "$D" "$T/out"
pl_track_job "$J" "$D"
t0=$(date +%s)

echo "# stage-in --async by the real agent, then wait for it to complete"
rc=0
"$BBCACHE" stage-in --async --job "$J" --no-progress "$HTTP_URL/ds/" "$D/ds" >"$T/out.log" 2>&1 || rc=$?
eq "stage-in --async of $nfiles files exits 0" "$rc" 0
[ "$rc" -eq 0 ] || { cat "$T/out.log"; bb_die "no agent: nothing else can run"; }
pl_track_agent "$J" "$D" >/dev/null
check "staging completes within 60 s" pl_wait_state "$D" 60
eq "state complete" "$pl_state" complete

echo "# the interposer is what answers"
ino=$(pre stat -c %i "$D/ds/big/huge.bin")
eq "stat of a staged file: the interposer's inode (2^62 | ds << 32 | entry)" "$(( ${ino:-0} >> 62 ))" 1
ino=$(stat -c %i "$D/ds/big/huge.bin")
eq "... and without it the real file's" "$(( ${ino:-0} >> 62 ))" 0

echo "# cat, sha256sum"
want=$(sed "s|^|$S/|" "$T/files" | xargs -d '\n' cat | sha256sum)
got=$(sed "s|^|$D/ds/|" "$T/files" | pre xargs -d '\n' cat | sha256sum)
eq "cat of all $nfiles files (absolute paths) equals the origin's bytes" "$got" "$want"
(cd "$S" && xargs -d '\n' sha256sum <"$T/files") >"$T/sha.want"
(cd "$D/ds" && pre xargs -d '\n' sha256sum <"$T/files") >"$T/sha.got" 2>"$T/sha.err"
check "sha256sum of every file (relative paths, cwd in the dataset) equals the origin's" cmp -s "$T/sha.want" "$T/sha.got"
check "... and says nothing on stderr" test ! -s "$T/sha.err"
eq "cat of the empty file is empty" "$(pre cat "$D/ds/empty/empty.bin" | wc -c | tr -d ' ')" 0

echo "# bytes come from shm, not from the local copy"
# Change the NVMe copy of one file behind the agent's back (same size):
# the interposer serves the blocks from shm, so readers still get the
# origin's bytes.
victim=mid/$(cd "$S/mid" && find . -type f -size +200k | sed 's|^\./||' | LC_ALL=C sort | head -n 1)
"$BB_PYTHON" -c 'import sys
p = sys.argv[1]
b = bytes(x ^ 0x5A for x in open(p, "rb").read())
open(p, "r+b").write(b)' "$D/ds/$victim"
check "the NVMe copy of $victim now differs" sh -c '! cmp -s "$1" "$2"' sh "$S/$victim" "$D/ds/$victim"
pre cat "$D/ds/$victim" >"$T/out/victim"
check "cat through the interposer gives the origin's bytes (from shm)" cmp -s "$S/$victim" "$T/out/victim"
pre "$BB_PYTHON" -c 'import sys; sys.stdout.buffer.write(open(sys.argv[1], "rb").read())' "$D/ds/$victim" >"$T/out/victim.py"
check "... and so does Python's open().read()" cmp -s "$S/$victim" "$T/out/victim.py"
cp "$S/$victim" "$D/ds/$victim"

echo "# cp (copy_file_range), cp -r"
rc=0
pre cp "$D/ds/big/huge.bin" "$T/out/huge.bin" 2>"$T/err" || rc=$?
eq "cp of the 9 MiB file exits 0" "$rc" 0
check "cp: every byte equal" cmp -s "$S/big/huge.bin" "$T/out/huge.bin"
pre cp "$D/ds/empty/empty.bin" "$T/out/empty.bin"
check "cp of the empty file: an empty file" test -f "$T/out/empty.bin" -a ! -s "$T/out/empty.bin"
rc=0
pre cp -r "$D/ds" "$T/out/cpr" 2>"$T/err" || rc=$?
eq "cp -r of the dataset exits 0" "$rc" 0
[ -s "$T/err" ] && sed 's/^/    /' "$T/err" | head -n 5
check "cp -r: the same tree, every byte equal" same_tree "$S" "$T/out/cpr"

echo "# dd (dup2), dd < file"
rc=0
pre dd if="$D/ds/big/huge.bin" of="$T/out/dd.bin" bs=1M status=none 2>"$T/err" || rc=$?
eq "dd if=staged exits 0" "$rc" 0
check "dd if=staged: every byte equal" cmp -s "$S/big/huge.bin" "$T/out/dd.bin"
dd if="$S/big/huge.bin" bs=4096 skip=1023 count=3 status=none >"$T/out/dd.want"
pre dd if="$D/ds/big/huge.bin" bs=4096 skip=1023 count=3 status=none >"$T/out/dd.got"
check "dd skip= across the 4 MiB block boundary" cmp -s "$T/out/dd.want" "$T/out/dd.got"
rc=0
pre sh -c 'dd bs=64K status=none <"$1"' sh "$D/ds/big/huge.bin" >"$T/out/ddin.bin" 2>"$T/err" || rc=$?
eq "sh -c 'dd < staged' exits 0" "$rc" 0
check "dd < staged (a staged descriptor inherited across exec): every byte equal" cmp -s "$S/big/huge.bin" "$T/out/ddin.bin"
pre sh -c 'exec 7<"$1"; dd bs=1M status=none <&7' sh "$D/ds/mid/$(cd "$S/mid" && find . -type f | sed 's|^\./||' | sort | tail -n 1)" >"$T/out/dd7.bin"
check "sh: exec 7< staged; dd <&7 (dup2 of a staged fd): every byte equal" \
	cmp -s "$S/mid/$(cd "$S/mid" && find . -type f | sed 's|^\./||' | sort | tail -n 1)" "$T/out/dd7.bin"

echo "# ls -l (statx), find: names, sizes, modes, times as staged"
# A directory's mtime is the manifest's own (directories are synthesized
# from the files' paths): not compared.
dirtime() { awk '/^d/ { $6 = "-" } { print }'; }
# The interposer shows the manifest's modes without write bits, the
# manifest's mtime, the caller's uid/gid, 2 + subdirectories links for a
# directory: the origin's own listing, write bits off, is the expectation.
(cd "$S" && LC_ALL=C ls -lR --time-style=+%s .) | grep -v '^total ' |
	awk '/^[-d]/ { p = substr($0, 1, 10); gsub(/w/, "-", p); $0 = p substr($0, 11) } { print }' | dirtime >"$T/ls.want"
(cd "$D/ds" && pre env LC_ALL=C ls -lR --time-style=+%s .) 2>"$T/ls.err" | grep -v '^total ' | dirtime >"$T/ls.got"
check "ls -lR through the interposer: names, sizes, modes, links, owners, mtimes" cmp -s "$T/ls.want" "$T/ls.got"
if ! cmp -s "$T/ls.want" "$T/ls.got"; then diff "$T/ls.want" "$T/ls.got" | head -n 10 | sed 's/^/    /'; fi
check "ls -lR: nothing on stderr" test ! -s "$T/ls.err"
# and against the manifest itself (bbcache ls --json, top level and big/)
"$BBCACHE" ls --json "$D/ds" big >"$T/m.json"
msize=$(sed -n 's/.*"path":"big\/huge.bin".*"size":\([0-9]*\).*/\1/p' "$T/m.json")
eq "ls -l size of big/huge.bin equals the manifest's" "$(pre ls -l "$D/ds/big/huge.bin" | awk '{print $5}')" "$msize"
eq "ls -l mode of a staged file" "$(pre ls -l "$D/ds/big/huge.bin" | cut -c1-10)" "-r--r--r--"
eq "ls -ld mode of a staged directory" "$(pre ls -ld "$D/ds/big" | cut -c1-10)" "dr-xr-xr-x"
(cd "$S" && find . -mindepth 1 -type f -printf '%P %s\n' | LC_ALL=C sort) >"$T/find.want"
pre find "$D/ds" -mindepth 1 -type f -printf '%P %s\n' 2>"$T/find.err" | LC_ALL=C sort >"$T/find.got"
check "find -type f -printf '%P %s': every name and size" cmp -s "$T/find.want" "$T/find.got"
(cd "$S" && find . -mindepth 1 -type d -printf '%P\n' | LC_ALL=C sort) >"$T/findd.want"
pre find "$D/ds" -mindepth 1 -type d -printf '%P\n' 2>>"$T/find.err" | LC_ALL=C sort >"$T/findd.got"
check "find -type d: every directory" cmp -s "$T/findd.want" "$T/findd.got"
eq "find -name '*.png': the PNG images" "$(pre find "$D/ds" -name '*.png' | wc -l | tr -d ' ')" \
	"$(find "$S" -name '*.png' | wc -l | tr -d ' ')"
check "find: nothing on stderr" test ! -s "$T/find.err"

echo "# tar c, then extract and diff -r"
rc=0
pre tar cf "$T/out/ds.tar" -C "$D" ds 2>"$T/tar.err" || rc=$?
eq "tar c of the dataset exits 0" "$rc" 0
check "tar c: no warning (e.g. 'file changed as we read it')" test ! -s "$T/tar.err"
[ -s "$T/tar.err" ] && head -n 5 "$T/tar.err" | sed 's/^/    /'
mkdir -p "$T/out/tarx"
tar xf "$T/out/ds.tar" -C "$T/out/tarx" 2>/dev/null
check "diff -r of the extracted archive and the origin" diff -r "$S" "$T/out/tarx/ds"
eq "tar lists every file" "$(tar tf "$T/out/ds.tar" | grep -vc '/$')" "$nfiles"

echo "# Python: open().read(), os.scandir, os.stat, os.listdir, os.walk, PIL"
rc=0
pre "$BB_PYTHON" "$PYCLIENT" fs "$D/ds" "$S" >"$T/py.log" 2>"$T/py.err" || rc=$?
pyok "$T/py.log"
eq "pyclient fs exits 0" "$rc" 0
[ "$rc" -ne 0 ] && tail -n 5 "$T/py.err" | sed 's/^/    /'

echo "# Python threads: one shared descriptor, and files of their own"
rc=0
pre timeout 120 "$BB_PYTHON" "$PYCLIENT" threads "$D/ds" "$S" >"$T/py.log" 2>"$T/py.err" || rc=$?
pyok "$T/py.log"
eq "pyclient threads exits 0" "$rc" 0
[ "$rc" -ne 0 ] && tail -n 5 "$T/py.err" | sed 's/^/    /'
echo "# C threads (no GIL between them): one shared descriptor, then files of their own"
[ -x "${PL_THREADS:-}" ] || bb_die "PL_THREADS (tests/preload/pl_threads) is not built: run through make check"
rc=0
pre "$PL_THREADS" "$D/ds/big/huge.bin" "$S/big/huge.bin" >"$T/th.log" 2>&1 || rc=$?
pyok "$T/th.log"
eq "pl_threads exits 0" "$rc" 0

echo "# a PyTorch DataLoader (num_workers=2, forked) over an ImageFolder"
rc=0
timeout 120 "$BB_PYTHON" "$PYCLIENT" loader "$S/images" "$T/dl.want" >"$T/dl0.log" 2>&1 || rc=$?
eq "the DataLoader over the origin (no interposer) runs" "$rc" 0
rc=0
pre timeout 120 "$BB_PYTHON" "$PYCLIENT" loader "$D/ds/images" "$T/dl.got" staged >"$T/dl1.log" 2>&1 || rc=$?
eq "the DataLoader over the staged images (workers check st_ino) runs" "$rc" 0
[ "$rc" -ne 0 ] && tail -n 8 "$T/dl1.log" | sed 's/^/    /'
eq "DataLoader: every sample's tensor and label equal" "$(sha256sum <"$T/dl.got")" "$(sha256sum <"$T/dl.want")"
eq "DataLoader: all $(find "$S/images" -type f | wc -l | tr -d ' ') samples" "$(wc -l <"$T/dl.got" | tr -d ' ')" \
	"$(find "$S/images" -type f | wc -l | tr -d ' ')"

echo "# writes to staged paths: EROFS; missing paths: ENOENT; outside: pass through"
rc=0
pre "$BB_PYTHON" "$PYCLIENT" errno "$D/ds" "$D/out/py" >"$T/py.log" 2>"$T/py.err" || rc=$?
pyok "$T/py.log"
[ -s "$T/py.err" ] && tail -n 5 "$T/py.err" | sed 's/^/    /'
# DS is the staged dataset.  Each command must fail with EROFS and leave the local copy as it was
# (names, types, modes, sizes, mtimes, bytes); if it changed it, the copy is
# put back so that the next checks see the staged state.
fingerprint() { (cd "$D/ds" && find . -printf '%P %y %m %s %T@\n' | LC_ALL=C sort && bb_sha_tree .); }
fingerprint >"$T/fp.want"
cp -a "$D/ds" "$T/pristine"
unchanged() { # DESC
	fingerprint >"$T/fp.got"
	if cmp -s "$T/fp.want" "$T/fp.got"; then
		ok "$1"
	else
		bad "$1:"
		diff "$T/fp.want" "$T/fp.got" | grep '^[<>]' | head -n 4 | sed 's/^/    /'
		rm -rf "$D/ds"
		cp -a "$T/pristine" "$D/ds"
	fi
}
erofs() { # DESC RC LOG
	if [ "$2" -ne 0 ] && grep -q 'Read-only file system' "$3"; then
		ok "$1: fails with EROFS"
	else
		bad "$1: fails with EROFS (exit $2: $(head -n 1 "$3"))"
	fi
}
f=big/huge.bin
for cmd in "touch @/$f" "touch @/newfile" "rm @/$f" "rm -rf @/empty" "mkdir @/newdir" "rmdir @/empty" \
	"mv @/$f @/moved" "mv @/$f $D/out/moved" "ln @/$f @/hardlink" "ln -s x @/symlink" \
	"chmod 0777 @/$f" "truncate -s 0 @/$f" "cp $S/$f @/$f"; do
	rc=0
	# shellcheck disable=SC2086
	pre $(echo "$cmd" | sed "s|@|$D/ds|g") >"$T/w.log" 2>&1 || rc=$?
	desc=$(echo "$cmd" | sed "s|@|DS|g; s|$T|T|g")
	erofs "$desc" "$rc" "$T/w.log"
	unchanged "... $desc leaves the local copy as it was"
done
rm -f "$D/out/moved"
rc=0
pre sh -c 'echo x >"$1"' sh "$D/ds/$f" >"$T/w.log" 2>&1 || rc=$?
erofs "echo > staged file" "$rc" "$T/w.log"
rc=0
pre sh -c 'echo x >>"$1"' sh "$D/ds/new.txt" >"$T/w.log" 2>&1 || rc=$?
erofs "echo >> new name in a dataset" "$rc" "$T/w.log"
unchanged "the local copy is as it was after all that"
rm -rf "$T/pristine"
rc=0
pre cat "$D/ds/no/such/file" >"$T/w.log" 2>&1 || rc=$?
check "cat of a missing staged path: ENOENT" sh -c "[ $rc -ne 0 ] && grep -q 'No such file or directory' '$T/w.log'"
echo "not in the manifest" >"$D/ds/extra.txt"
rc=0
pre cat "$D/ds/extra.txt" >"$T/w.log" 2>&1 || rc=$?
check "a file on disk that the manifest lacks: ENOENT" sh -c "[ $rc -ne 0 ] && grep -q 'No such file or directory' '$T/w.log'"
rm -f "$D/ds/extra.txt"
rc=0
got=$(pre sh -c 'mkdir -p "$1/out/sub" && echo hello >"$1/out/sub/x" && cat "$1/out/sub/x" && rm "$1/out/sub/x" && echo again >"$1/out/sub/x"' sh "$D" 2>&1) || rc=$?
eq "DIR/out/sub/x (outside the datasets): mkdir, write, read, rm" "$rc:$got" "0:hello"
eq "... it is on the real disk" "$(cat "$D/out/sub/x" 2>&1)" again

echo "# strace: a hot read makes no read()/pread64() on the file"
trace() { # OUT TRACE-SET CMD...: strace -f -y, the command through the interposer
	_o=$1 _e=$2
	shift 2
	strace -f -y -qq -o "$_o" -e trace="$_e" env LD_PRELOAD="$PL_LD_PRELOAD" BBCACHE_JOB_DIR="$D" \
		ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 "$@"
}
big=$D/ds/big/huge.bin
strace -f -y -qq -o "$T/st0" -e trace=read,pread64 cat "$big" >/dev/null
check "control: without the interposer, strace -y shows cat's read() on $big" grep -qF "<$big>" "$T/st0"
trace "$T/st1" read,pread64,readv,preadv,preadv2,openat,open,mmap,copy_file_range,sendfile cat "$big" >"$T/out/st1.bin"
check "strace run: cat through the interposer still gives the right bytes" cmp -s "$S/big/huge.bin" "$T/out/st1.bin"
lacks "cat through the interposer: no system call on $big (read, pread64, open, mmap, copy_file_range)" "$T/st1" "$big"
if grep -E '^[0-9]+ +(read|pread64|readv|preadv|preadv2)\(' "$T/st1" | grep -qE "<$D/(ds/|\.bbcache>)"; then
	bad "... and no read of the placeholder or of anything in the dataset"
else
	ok "... and no read of the placeholder or of anything in the dataset"
fi
# strace -c: reading 9 MiB adds no read()/pread64() call at all
reads() { awk '$NF == "read" || $NF == "pread64" { n += $4 } END { print n + 0 }' "$1"; }
strace -f -c -o "$T/c0" -e trace=read,pread64 env LD_PRELOAD="$PL_LD_PRELOAD" BBCACHE_JOB_DIR="$D" \
	ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 cat "$D/ds/empty/empty.bin" >/dev/null
strace -f -c -o "$T/c1" -e trace=read,pread64 env LD_PRELOAD="$PL_LD_PRELOAD" BBCACHE_JOB_DIR="$D" \
	ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 cat "$big" >/dev/null
strace -f -c -o "$T/c2" -e trace=read,pread64 cat "$big" >/dev/null
strace -f -c -o "$T/c3" -e trace=read,pread64 cat "$D/ds/empty/empty.bin" >/dev/null
echo "# strace -c read+pread64 calls: interposer empty $(reads "$T/c0"), 9 MiB $(reads "$T/c1"); without: empty $(reads "$T/c3"), 9 MiB $(reads "$T/c2")"
eq "strace -c: cat of 9 MiB through the interposer makes as many read/pread64 calls as cat of an empty file" \
	"$(reads "$T/c1")" "$(reads "$T/c0")"
check "control: without it, cat of 9 MiB makes more than 60 more" test "$(reads "$T/c2")" -gt $(($(reads "$T/c3") + 60))
trace "$T/st2" read,pread64,readv,openat,mmap "$BB_PYTHON" -c 'import sys
d = open(sys.argv[1], "rb").read()
sys.stdout.buffer.write(d)' "$big" >"$T/out/st2.bin"
check "strace run: Python's read gives the right bytes" cmp -s "$S/big/huge.bin" "$T/out/st2.bin"
lacks "Python open().read() through the interposer: no system call on $big" "$T/st2" "$big"

echo "# strace: a stat of a staged path makes no stat system call on it"
strace -f -y -qq -o "$T/st3" -e trace=%stat,statx stat "$big" >/dev/null
check "control: without the interposer, stat(1) makes a stat-family call on $big" grep -qF "$big" "$T/st3"
trace "$T/st4" '%stat,%file' stat "$big" >"$T/out/stat.txt"
contains "stat(1) through the interposer prints the size" "$T/out/stat.txt" "Size: $((9 * 1048576 + 12345))"
lacks "stat(1) through the interposer: no system call names $big" "$T/st4" "$big"
strace -f -y -qq -o "$T/st5" -e trace=%stat,statx ls -lR "$D/ds" >/dev/null
check "control: without the interposer, ls -lR makes stat-family calls in the dataset" grep -qF "$D/ds/" "$T/st5"
trace "$T/st5" '%stat,statx' ls -lR "$D/ds" >/dev/null
lacks "ls -lR through the interposer: no stat-family call on anything in the dataset" "$T/st5" "$D/ds/"
trace "$T/st6" '%stat,%file' "$BB_PYTHON" -c 'import os, sys
n = sum(os.stat(os.path.join(r, f)).st_size for r, _, fs in os.walk(sys.argv[1]) for f in fs)
print(n)' "$D/ds" >"$T/out/walk.txt"
eq "os.walk + os.stat of everything: the total size" "$(cat "$T/out/walk.txt")" "$(find "$S" -type f -printf '%s\n' | awk '{n += $1} END {print n}')"
if grep -F "$D/ds/" "$T/st6" | grep -qv 'openat(.*O_DIRECTORY'; then
	bad "os.walk + os.stat: no stat or file open on a staged file (only its directories are opened)"
	grep -F "$D/ds/" "$T/st6" | grep -v 'openat(.*O_DIRECTORY' | head -n 5 | sed 's/^/    /'
else
	ok "os.walk + os.stat: no stat or file open on a staged file (only its directories are opened)"
fi

echo "# the agent stops cleanly"
rc=0
"$BBCACHE" stop --job-dir "$D" >"$T/out.log" 2>&1 || rc=$?
eq "bbcache stop exits 0" "$rc" 0
check "nothing left in /dev/shm" test ! -e "/dev/shm/bbcache.$J"
echo "# $(basename "$0"): $(($(date +%s) - t0)) s after staging started"
pl_finish
