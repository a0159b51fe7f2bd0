"""Disk replication helpers of test_disk.py: the test's model of an
image and the writes that keep it (with stock qemu-io), the replay of the
real QEMU 7.2 COLO capture with writes between checkpoints, and a raw NBD
client that can send what no correct client sends."""

import hashlib
import os
import random
import socket
import struct
import subprocess

import colodecode

from .paths import DATA
from .record import recv_exact, replay

DISK_MB = 16
PAGE = 4096
NBD_OPTS_MAGIC = 0x49484156454F5054
NBD_REP_MAGIC = 0x3e889045565a9
NBD_REQUEST_MAGIC = 0x25609513
NBD_REPLY_MAGIC = 0x67446698


def sha(data):
    return hashlib.sha256(data).hexdigest()


def file_sha(path):
    with open(path, "rb") as f:
        return sha(f.read())


def qemu_io(uri, *cmds, read_only=False):
    args = ["qemu-io", "-f", "raw"] + (["-r"] if read_only else []) + [uri]
    for c in cmds:
        args += ["-c", c]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    if r.returncode or "failed" in out or "error" in out.lower():
        raise AssertionError("qemu-io %s: %s" % (" ".join(cmds), out))
    return out


def make_image(path, seed):
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(DISK_MB << 20))
    with open(path, "wb") as f:
        f.write(data)
    return data


class Writer:
    """Random writes through qemu-io, applied to the model as they go:
    data (unaligned too), zeroes and discards."""

    def __init__(self, uri, model, seed):
        self.uri = uri
        self.model = model
        self.rng = random.Random(seed)

    def epoch(self, n, pages=None):
        cmds = []
        for _ in range(n):
            kind = self.rng.choice(("data", "data", "data", "zero", "trim"))
            if pages is not None:
                # whole distinct pages (the commit copies exactly these)
                off, length = pages.pop() * PAGE, PAGE
                kind = "data"
            else:
                length = self.rng.randint(1, 64 << 10)
                off = self.rng.randrange(0, (DISK_MB << 20) - length)
            pat = self.rng.randrange(1, 256)
            if kind == "data":
                cmds.append("write -P %d %d %d" % (pat, off, length))
                self.model[off:off + length] = bytes([pat]) * length
            elif kind == "zero":
                cmds.append("write -z %d %d" % (off, length))
                self.model[off:off + length] = bytes(length)
            else:
                # qemu-io aligns discards to its request alignment (1)
                cmds.append("discard %d %d" % (off, length))
                self.model[off:off + length] = bytes(length)
        if cmds:
            qemu_io(self.uri, *cmds)


def load_capture():
    with open(os.path.join(DATA, "colo72kvm.p2s.bin"), "rb") as f:
        return colodecode.Session(f.read())


def run_epochs(tc, sec, image, model, seed, check, pages_at=None,
               stop_at=None):
    """Replays the capture into @sec; after checkpoint k is acknowledged
    the image must hold committed[k] (if @check), then the writes of
    checkpoint k+1 go out.  @pages_at: {k: n} writes n distinct whole
    pages in epoch k.  Returns committed (the model per checkpoint)."""
    session = load_capture()
    w = Writer(sec.uri, model, seed)
    committed = [bytes(model)]
    rng = random.Random(seed + 1)

    def on_commit(k):
        if check:
            tc.assertEqual(file_sha(image), sha(committed[k]),
                           "image after checkpoint %d" % k)
        n = (pages_at or {}).get(k + 1)
        if n:
            w.epoch(n, rng.sample(range((DISK_MB << 20) // PAGE), n))
        else:
            w.epoch(rng.randint(1, 5))
        committed.append(bytes(model))

    sock = sec.connect()
    try:
        replay(sock, session, on_commit=on_commit, stop_at=stop_at)
    finally:
        sock.close()
    return committed


class NbdClient:
    """Just enough NBD to send what stock clients never would."""

    def __init__(self, path, flags=3):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(10)
        self.s.connect(path)
        hello = recv_exact(self.s, 18, 10)
        assert hello[:8] == b"NBDMAGIC", hello
        self.s.sendall(struct.pack(">I", flags))

    def option(self, opt, data=b""):
        self.s.sendall(struct.pack(">QII", NBD_OPTS_MAGIC, opt, len(data))
                       + data)

    def reply(self):
        magic, opt, typ, n = struct.unpack(">QIII",
                                           recv_exact(self.s, 20, 10))
        assert magic == NBD_REP_MAGIC, hex(magic)
        return typ, recv_exact(self.s, n, 10) if n else b""

    def go(self, name=b"disk0"):
        self.option(7, struct.pack(">I", len(name)) + name + b"\0\0")
        replies = []
        while True:
            typ, data = self.reply()
            replies.append((typ, data))
            if typ == 1 or typ & 0x80000000:
                return replies

    def request(self, typ, off, length, payload=b"", flags=0,
                magic=NBD_REQUEST_MAGIC):
        self.s.sendall(struct.pack(">IHHQQI", magic, flags, typ, 77, off,
                                   length) + payload)

    def simple_reply(self, data_len=0):
        magic, err, cookie = struct.unpack(">IIQ",
                                           recv_exact(self.s, 16, 10))
        assert magic == NBD_REPLY_MAGIC and cookie == 77
        return err, recv_exact(self.s, data_len, 10) if data_len and \
            not err else b""

    def closed(self):
        """True if the server closed the connection (then ours too)."""
        try:
            gone = self.s.recv(1) == b""
        except ConnectionResetError:
            gone = True
        if gone:
            self.s.close()
        return gone

    def close(self):
        self.s.close()
