"""Python clients of the interposer tests (run with /usr/bin/python3).

  pyclient.py gen DIR                  images (PNG, JPEG) for PIL and ImageFolder
  pyclient.py fs STAGED ORIGIN         open().read(), os.scandir, os.stat,
                                       os.listdir, os.walk, PIL: staged == origin
  pyclient.py errno STAGED OUTSIDE     EROFS / ENOENT / pass-through, by errno
  pyclient.py loader ROOT OUT [staged] a torch DataLoader (num_workers=2, forked)
                                       over an ImageFolder at ROOT: one line per
                                       sample (index, label, sha256 of the tensor)
  pyclient.py epoch STAGED ORIGIN SECS read every staged file again and again for
                                       SECS seconds; any byte that differs from
                                       the origin's is a failure, EIO is counted
  pyclient.py hello SOCKET             the agent protocol's HELLO (who may talk)

Each prints "ok - ..." / "not ok - ..." lines (the shell test counts them) or
data, and exits 1 when something is wrong.  A staged path is proven to come
through the interposer by its st_ino: the interposer's are 2^62 | ds << 32 |
entry, which no file system here gives.
"""
import errno
import hashlib
import os
import socket
import struct
import sys
import time

BAD = 0


def ok(cond, what):
    global BAD
    if cond:
        print("ok - " + what)
    else:
        BAD += 1
        print("not ok - " + what)
    sys.stdout.flush()
    return cond


def ours(st):
    return (st.st_ino >> 62) == 1


def tree(root):
    """relative path -> ('d', None) | ('f', size), by os.walk"""
    out = {}
    for r, ds, fs in os.walk(root):
        rel = os.path.relpath(r, root)
        for d in ds:
            out[os.path.normpath(os.path.join(rel, d))] = ("d", None)
        for f in fs:
            p = os.path.join(r, f)
            out[os.path.normpath(os.path.join(rel, f))] = ("f", os.stat(p).st_size)
    return out


def cmd_gen(top):
    import random
    from PIL import Image
    rng = random.Random(7)
    for cls, ext, n in (("cls_a", "png", 14), ("cls_b", "jpg", 14), ("cls_c", "png", 6), ("cls_c", "jpg", 6)):
        d = os.path.join(top, cls)
        os.makedirs(d, exist_ok=True)
        for i in range(n):
            w, h = rng.randint(16, 96), rng.randint(16, 96)
            mode = rng.choice(["RGB", "L", "RGBA"]) if ext == "png" else rng.choice(["RGB", "L"])
            nb = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
            im = Image.frombytes(mode, (w, h), rng.randbytes(w * h * nb))
            p = os.path.join(d, "img-%03d.%s" % (i, ext))
            if ext == "jpg":
                im.save(p, quality=rng.randint(60, 95))
            else:
                im.save(p)
    return 0


def cmd_fs(staged, origin):
    from PIL import Image

    st = os.stat(staged)
    ok(ours(st), "os.stat of the dataset root comes from the interposer (st_ino %#x)" % st.st_ino)
    ok(not ours(os.stat(origin)), "os.stat of the origin does not")

    # os.walk: the same tree, names, kinds and sizes
    ts, to = tree(staged), tree(origin)
    ok(ts == to, "os.walk: %d entries, names, kinds, sizes as the origin's" % len(to))
    if ts != to:
        for k in sorted(set(ts) ^ set(to))[:5]:
            print("#   only in %s: %s" % ("staged" if k in ts else "origin", k))
        for k in sorted(k for k in set(ts) & set(to) if ts[k] != to[k])[:5]:
            print("#   differs: %s staged %s origin %s" % (k, ts[k], to[k]))

    # open().read() of every file, byte for byte, and os.stat of each
    files = sorted(k for k, v in to.items() if v[0] == "f")
    diff, notours, badsize = [], [], []
    nbytes = 0
    for rel in files:
        sp, op = os.path.join(staged, rel), os.path.join(origin, rel)
        with open(sp, "rb") as f:
            a = f.read()
        with open(op, "rb") as f:
            b = f.read()
        nbytes += len(b)
        if a != b:
            diff.append(rel)
        s = os.stat(sp)
        if not ours(s):
            notours.append(rel)
        if s.st_size != len(b) or s.st_blksize != 4096:
            badsize.append(rel)
    ok(not diff, "open().read() of %d files (%d bytes): equal to the origin (%s)" % (len(files), nbytes, diff[:3]))
    ok(not notours, "os.stat of every file comes from the interposer (%s)" % notours[:3])
    ok(not badsize, "os.stat sizes equal, st_blksize 4096 (%s)" % badsize[:3])

    # Files opened in manifest order, then in other orders (the interposer
    # guesses the next entry during a scan in order): every open gets its
    # own file's bytes, whatever came before it.
    def order_ok(seq):
        for rel in seq:
            sp = os.path.join(staged, rel)
            if rel.startswith("no-such"):
                if os.path.exists(sp):
                    return False
                continue
            if rel.endswith("/"):
                if not os.path.isdir(sp):
                    return False
                continue
            with open(sp, "rb") as f:
                a = f.read()
            with open(os.path.join(origin, rel), "rb") as f:
                if a != f.read():
                    print("#   %s: wrong bytes after %s" % (rel, seq[:seq.index(rel)][-3:]))
                    return False
        return True
    mid = [r for r in files if os.path.dirname(r) == os.path.dirname(files[len(files) // 2])]
    mixed = []
    for i, r in enumerate(mid):
        mixed.append(r)
        if i % 3 == 0:
            mixed.append(r)  # the same file twice
        if i % 4 == 1:
            mixed.append(os.path.dirname(r) + "/")  # its directory between two files
        if i % 5 == 2:
            mixed.append("no-such-" + os.path.basename(r))  # a name that is not there
        if i % 7 == 3 and i + 2 < len(mid):
            mixed.append(mid[i + 2])  # one ahead, then back
    ok(len(mid) >= 5 and order_ok(mid) and order_ok(mid[::-1]) and order_ok(mid[::2]) and order_ok(mixed),
       "%d files of one directory in order, reversed, every second, and in order with repeats, "
       "look-aheads, their directory and missing names between: each open reads its own file" % len(mid))

    # text mode and partial reads, seek/tell
    big = max(files, key=lambda r: to[r][1])
    with open(os.path.join(staged, big), "rb") as f, open(os.path.join(origin, big), "rb") as g:
        good = True
        size = to[big][1]
        for off, n in ((0, 1), ((4 << 20) - 3, 10), ((4 << 20) - 1, (4 << 20) + 7), (size - 5, 100), (size + 10, 5)):
            f.seek(off)
            g.seek(off)
            a, b = f.read(n), g.read(n)
            if a != b or f.tell() != g.tell():
                good = False
                print("#   %s at %d+%d: %d vs %d bytes, tell %d vs %d" % (big, off, n, len(a), len(b), f.tell(), g.tell()))
        f.seek(0, os.SEEK_END)
        good = good and f.tell() == to[big][1]
    ok(good, "seek/read/tell across block boundaries of %s (%d bytes)" % (big, to[big][1]))
    # os.pread / os.readv on a raw descriptor
    fd = os.open(os.path.join(staged, big), os.O_RDONLY)
    try:
        with open(os.path.join(origin, big), "rb") as g:
            ref = g.read()
        a = os.pread(fd, 1 << 20, (4 << 20) - 1000)
        bufs = [bytearray(3000), bytearray(5 << 20)]
        os.lseek(fd, 123, os.SEEK_SET)
        n = os.readv(fd, bufs)
        rv = bytes(bufs[0]) + bytes(bufs[1])
        ok(a == ref[(4 << 20) - 1000:(5 << 20) - 1000] and rv[:n] == ref[123:123 + n] and n == min(len(rv), len(ref) - 123),
           "os.pread and os.readv across a block boundary")
        d2 = os.dup(fd)
        os.lseek(fd, 77, os.SEEK_SET)
        ok(os.read(d2, 10) == ref[77:87], "a dup'ed descriptor shares the offset")
        os.close(d2)
        ok(os.fstat(fd).st_size == len(ref) and ours(os.fstat(fd)), "os.fstat of a staged descriptor")
    finally:
        os.close(fd)

    # os.listdir and os.scandir of every directory
    dirs = [""] + sorted(k for k, v in to.items() if v[0] == "d")
    badl, bads = [], []
    for rel in dirs:
        sp, op = os.path.join(staged, rel), os.path.join(origin, rel)
        if sorted(os.listdir(sp)) != sorted(os.listdir(op)):
            badl.append(rel)
        with os.scandir(sp) as it:
            es = {e.name: (e.is_dir(), e.is_file(), e.stat().st_size if e.is_file() else None) for e in it}
        with os.scandir(op) as it:
            eo = {e.name: (e.is_dir(), e.is_file(), e.stat().st_size if e.is_file() else None) for e in it}
        if es != eo:
            bads.append(rel)
    ok(not badl, "os.listdir of %d directories equal (%s)" % (len(dirs), badl[:3]))
    ok(not bads, "os.scandir: names, is_dir, is_file, sizes equal (%s)" % bads[:3])
    ok(os.path.isdir(staged) and os.path.isfile(os.path.join(staged, big)) and
       not os.path.exists(os.path.join(staged, "no-such-file")), "os.path.isdir/isfile/exists")

    # PIL decodes every image the same as from the origin
    imgs = [r for r in files if r.endswith((".png", ".jpg"))]
    badimg = []
    for rel in imgs:
        with Image.open(os.path.join(staged, rel)) as a, Image.open(os.path.join(origin, rel)) as b:
            if (a.format, a.mode, a.size) != (b.format, b.mode, b.size) or a.tobytes() != b.tobytes():
                badimg.append(rel)
    ok(imgs and not badimg, "PIL decodes %d PNG/JPEG images as from the origin (%s)" % (len(imgs), badimg[:3]))
    return 1 if BAD else 0


def expect_err(what, fn, want):
    try:
        fn()
    except OSError as e:
        return ok(e.errno == want, "%s: %s (got %s)" % (what, errno.errorcode[want], errno.errorcode.get(e.errno, e.errno)))
    return ok(False, "%s: %s (it succeeded)" % (what, errno.errorcode[want]))


def cmd_errno(staged, outside):
    files = []
    for r, _, fs in os.walk(staged):
        files += [os.path.join(r, f) for f in fs]
    f = sorted(files)[0]
    d = os.path.dirname(f)
    expect_err("os.open O_WRONLY of a staged file", lambda: os.open(f, os.O_WRONLY), errno.EROFS)
    expect_err("os.open O_RDWR of a staged file", lambda: os.open(f, os.O_RDWR), errno.EROFS)
    expect_err("open(, 'a') of a staged file", lambda: open(f, "a"), errno.EROFS)
    expect_err("O_CREAT of a new name in a dataset", lambda: os.open(os.path.join(d, "new"), os.O_WRONLY | os.O_CREAT, 0o644), errno.EROFS)
    expect_err("os.unlink of a staged file", lambda: os.unlink(f), errno.EROFS)
    expect_err("os.rename of a staged file", lambda: os.rename(f, f + ".x"), errno.EROFS)
    expect_err("os.mkdir in a dataset", lambda: os.mkdir(os.path.join(d, "newdir")), errno.EROFS)
    expect_err("os.rmdir of a staged directory", lambda: os.rmdir(d), errno.EROFS)
    expect_err("os.truncate of a staged file", lambda: os.truncate(f, 0), errno.EROFS)
    expect_err("os.stat of a missing path", lambda: os.stat(os.path.join(staged, "no/such")), errno.ENOENT)
    expect_err("open() of a missing path", lambda: open(os.path.join(staged, "nope.bin"), "rb"), errno.ENOENT)
    expect_err("a path below a file", lambda: os.stat(os.path.join(f, "x")), errno.ENOTDIR)
    ok(os.access(f, os.R_OK) and not os.access(f, os.W_OK), "os.access: R_OK yes, W_OK no")
    # ioctl on a staged descriptor answers as a regular file's would (the
    # placeholder underneath would answer EBADF to every request)
    import array, fcntl, termios
    fd = os.open(f, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        got = len(os.read(fd, 100))
        b = array.array("i", [-1])
        fcntl.ioctl(fd, termios.FIONREAD, b)
        ok(b[0] == size - got, "ioctl FIONREAD: %d bytes left after reading %d of %d" % (b[0], got, size))
        expect_err("ioctl FIONREAD with no buffer (a NULL pointer)", lambda: fcntl.ioctl(fd, termios.FIONREAD),
                   errno.EFAULT)
        ok(not os.isatty(fd), "isatty of a staged file: false")
        expect_err("ioctl TCGETS of a staged file", lambda: fcntl.ioctl(fd, termios.TCGETS, bytes(64)), errno.ENOTTY)
        os.set_inheritable(fd, True)
        fcntl.ioctl(fd, termios.FIOCLEX)
        ok(not os.get_inheritable(fd), "ioctl FIOCLEX sets close-on-exec")
        fcntl.ioctl(fd, termios.FIONCLEX)
        ok(os.get_inheritable(fd), "ioctl FIONCLEX clears it")
    finally:
        os.close(fd)
    os.makedirs(outside, exist_ok=True)
    p = os.path.join(outside, "x")
    with open(p, "w") as g:
        g.write("written outside the datasets\n")
    with open(p) as g:
        ok(g.read() == "written outside the datasets\n", "a path outside the datasets is writable")
    ok(not ours(os.stat(p)), "... and is the real file (not the interposer's)")
    os.unlink(p)
    return 1 if BAD else 0


def cmd_loader(root, out, staged):
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms
    from torchvision.datasets.folder import default_loader

    def loader(path):
        if staged and not ours(os.stat(path)):
            raise RuntimeError("%s: not served by the interposer in worker %d" % (path, os.getpid()))
        return default_loader(path)

    ds = datasets.ImageFolder(root, transform=transforms.ToTensor(), loader=loader)
    dl = DataLoader(ds, batch_size=4, shuffle=False, num_workers=2, collate_fn=lambda b: b,
                    multiprocessing_context="fork")
    n = 0
    with open(out, "w") as f:
        for batch in dl:
            for x, y in batch:
                h = hashlib.sha256(x.numpy().tobytes()).hexdigest()
                f.write("%d %d %s %s\n" % (n, y, "x".join(map(str, x.shape)), h))
                n += 1
    print("# %d samples, %d classes, main pid %d" % (n, len(ds.classes), os.getpid()))
    return 0 if n == len(ds) and n > 0 else 1


def cmd_epoch(staged, origin, secs):
    files = []
    for r, _, fs in os.walk(origin):
        files += [os.path.relpath(os.path.join(r, f), origin) for f in fs]
    files.sort()
    ref = {}
    for rel in files:
        with open(os.path.join(origin, rel), "rb") as f:
            ref[rel] = hashlib.sha256(f.read()).digest()
    end = time.monotonic() + float(secs)
    epochs = reads = eio = wrong = 0
    while True:
        for rel in files:
            try:
                with open(os.path.join(staged, rel), "rb") as f:
                    data = f.read()
            except OSError as e:
                if e.errno == errno.EIO:
                    eio += 1
                    continue
                raise
            reads += 1
            if hashlib.sha256(data).digest() != ref[rel]:
                wrong += 1
                print("# WRONG BYTES: %s (%d bytes)" % (rel, len(data)))
        epochs += 1
        if time.monotonic() >= end:
            break
    print("epochs %d reads %d eio %d wrong %d" % (epochs, reads, eio, wrong))
    return 1 if wrong else 0


def cmd_hello(path):
    """HELLO: exit 0 and print the job id if the agent answers; 2 if the
    connect is refused (EACCES/EPERM); 3 if the agent closes the connection."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(10)
    try:
        s.connect(path)
    except PermissionError as e:
        print("connect: %s" % e)
        return 2
    hdr = struct.pack("<IIHHIII", 0x31434242, 1, 1, 0, 1, 4, 0) + struct.pack("<I", 1)
    try:
        s.send(hdr)
        rep = s.recv(70000)
    except OSError as e:
        print("call: %s" % e)
        return 3
    if not rep:
        print("call: the agent closed the connection")
        return 3
    magic, ver, op, fl, seq, ln, _ = struct.unpack_from("<IIHHIII", rep)
    rc, = struct.unpack_from("<i", rep, 24)
    print("reply op %#x rc %d payload %d" % (op, rc, ln))
    return 0 if rc == 0 else 4


def cmd_threads(staged, origin):
    """Threads share one descriptor (read() moves one offset: every 4 KiB
    chunk comes back exactly once), and open, read and close files of
    their own at the same time (the per-thread record cache; threads that
    exit free theirs)."""
    import threading
    big = os.path.join("big", "huge.bin")
    want = open(os.path.join(origin, big), "rb").read()
    fd = os.open(os.path.join(staged, big), os.O_RDONLY)
    got = [[] for _ in range(8)]

    def shared(i):
        while True:
            b = os.read(fd, 4096)
            if not b:
                return
            got[i].append(b)

    ts = [threading.Thread(target=shared, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    os.close(fd)
    chunks = sorted(c for g in got for c in g)
    ok(sum(len(c) for c in chunks) == len(want),
       "8 threads on one descriptor read %d bytes in all (the file's size)" % len(want))
    ok(chunks == sorted(want[o:o + 4096] for o in range(0, len(want), 4096)),
       "... each 4 KiB chunk of the file exactly once (one offset, moved atomically)")
    ok(sum(1 for g in got if g) >= 2, "... and more than one thread got some")

    files = sorted(os.path.relpath(os.path.join(r, f), origin)
                   for r, _, fs in os.walk(os.path.join(origin, "mid")) for f in fs)
    bad = []

    def own(i):
        for _ in range(3):
            for f in files:
                with open(os.path.join(staged, f), "rb") as h:
                    if h.read() != open(os.path.join(origin, f), "rb").read():
                        bad.append((i, f))

    for _ in range(2):  # a second round of new threads reuses nothing stale
        ts = [threading.Thread(target=own, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    ok(files and not bad, "4 threads, twice, open+read+close %d files 3 times each: every byte "
       "equals the origin's%s" % (len(files), " (bad: %s)" % bad[:3] if bad else ""))
    return 0 if BAD == 0 else 1


def main(argv):
    cmd = argv[1]
    if cmd == "gen":
        return cmd_gen(argv[2])
    if cmd == "fs":
        return cmd_fs(argv[2], argv[3])
    if cmd == "errno":
        return cmd_errno(argv[2], argv[3])
    if cmd == "loader":
        return cmd_loader(argv[2], argv[3], len(argv) > 4 and argv[4] == "staged")
    if cmd == "epoch":
        return cmd_epoch(argv[2], argv[3], argv[4])
    if cmd == "threads":
        return cmd_threads(argv[2], argv[3])
    if cmd == "hello":
        return cmd_hello(argv[2])
    print("unknown command " + cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
