"""A second, independent reading of what colo-secondary leaves behind: RAM
files, the commit record, a replay of captured streams."""

import os
import struct
import zlib

from .base import sha256_file


def ram_files(ram_dir):
    """{relative block file: sha256} of every RAM file in @ram_dir."""
    out = {}
    for root, _dirs, files in os.walk(ram_dir):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, ram_dir)
            if rel in ("device-state.bin", "vmdesc.json") or \
                    rel.startswith("colo-"):
                continue
            out[rel] = sha256_file(path)
    return out


def recv_exact(sock, n, timeout=30):
    """@n bytes from @sock (timeout None: wait as long as it takes)."""
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed after %d of %d reply bytes"
                           % (len(buf), n))
        buf += chunk
    return buf


def replay(sock, session, stop_at=None, on_commit=None):
    """Plays a decoded COLO capture (colodecode.Session) into @sock like
    its primary did: each segment, then wait for the replies it earned.
    With @stop_at, sends nothing from that byte offset on.  Returns the
    reply bytes received.  @on_commit(k) runs after checkpoint k (0 = the
    initial migration) has been acknowledged."""
    replies = b""
    committed = 0
    for start, end, expect in session.segments:
        if stop_at is not None and end > stop_at:
            if stop_at > start:
                sock.sendall(session.data[start:stop_at])
            break
        sock.sendall(session.data[start:end])
        if expect:
            got = recv_exact(sock, len(expect))
            replies += got
            if got != expect:
                raise AssertionError("reply %r, expected %r after offset %#x"
                                     % (got, expect, end))
            if expect[-4:] in (b"\x00\x00\x00\x00", b"\x00\x00\x00\x06"):
                if on_commit:
                    on_commit(committed)
                committed += 1
    return replies


def read_record(path):
    """A colo-checkpoint record or colo-journal (migration/colo-journal.c),
    decoded here independently: {number, machine, blocks, devices}."""
    with open(path, "rb") as f:
        rec = f.read()
    assert rec[:8] == b"COLOCKPT", path
    assert zlib.crc32(rec[:-4]) == int.from_bytes(rec[-4:], "big"), path
    p = 8
    version, flags = struct.unpack_from(">II", rec, p)
    p += 8
    number = struct.unpack_from(">Q", rec, p)[0]
    p += 8
    machine = rec[p + 1:p + 1 + rec[p]].decode()
    p += 1 + rec[p]
    _section, nblocks = struct.unpack_from(">II", rec, p)
    p += 8
    blocks = {}
    for _ in range(nblocks):
        name = rec[p + 1:p + 1 + rec[p]].decode()
        p += 1 + rec[p]
        blocks[name] = struct.unpack_from(">Q", rec, p)[0]
        p += 16
        if flags & 1:
            p += 8 + struct.unpack_from(">Q", rec, p)[0]
    dlen = struct.unpack_from(">Q", rec, p)[0]
    p += 8
    devices = rec[p:p + dlen]
    p += dlen
    disks = {}
    if version == 2:
        # u32 count; per disk: str8 node, u32+filename, u64 size, and in a
        # journal u32+cache file, u64 n, n x (u64 page, u64 slot)
        ndisks = struct.unpack_from(">I", rec, p)[0]
        p += 4
        for _ in range(ndisks):
            node = rec[p + 1:p + 1 + rec[p]].decode()
            p += 1 + rec[p]
            n = struct.unpack_from(">I", rec, p)[0]
            filename = rec[p + 4:p + 4 + n].decode()
            p += 4 + n
            size = struct.unpack_from(">Q", rec, p)[0]
            p += 8
            extents = []
            if flags & 1:
                n = struct.unpack_from(">I", rec, p)[0]
                p += 4 + n
                n = struct.unpack_from(">Q", rec, p)[0]
                p += 8
                extents = [struct.unpack_from(">QQ", rec, p + 16 * i)
                           for i in range(n)]
                p += 16 * n
            disks[node] = {"filename": filename, "size": size,
                           "extents": extents}
    assert p + 4 == len(rec), path
    return {"version": version, "number": number, "machine": machine,
            "blocks": blocks, "devices": devices, "disks": disks}


def record_devices(ram_dir):
    """The device state of the checkpoint the RAM folder holds."""
    return read_record(os.path.join(ram_dir, "colo-checkpoint"))["devices"]


def block_file(name):
    return name.lstrip("/")


def ram_matches(ram_dir, digests):
    """{block file: (ours, want)} for every block that differs."""
    bad = {}
    for name, want in digests.items():
        path = os.path.join(ram_dir, block_file(name))
        got = sha256_file(path) if os.path.exists(path) else None
        if got != want:
            bad[block_file(name)] = (got, want)
    return bad
