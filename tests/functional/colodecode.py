"""An independent decoder of captured COLO sessions (primary-to-secondary
bytes), written from the wire format for the tests.  It computes where
each message and checkpoint starts, which replies a secondary owes, and
the RAM a correct secondary holds after every committed checkpoint.
It shares no code with colo-secondary."""

import hashlib
import json
import struct

PAGE = 4096
MSG = {0: "CHECKPOINT_READY", 1: "CHECKPOINT_REQUEST", 2: "CHECKPOINT_REPLY",
       3: "VMSTATE_SEND", 4: "VMSTATE_SIZE", 5: "VMSTATE_RECEIVED",
       6: "VMSTATE_LOADED"}


class Cut(Exception):
    """The capture ends inside a structure."""


class Reader:
    def __init__(self, data, pos=0):
        self.d = data
        self.p = pos

    def take(self, n):
        if self.p + n > len(self.d):
            raise Cut(self.p)
        v = self.d[self.p:self.p + n]
        self.p += n
        return v

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def s8(self):
        return self.take(self.u8()).decode()


def xbzrle_apply(page, enc):
    out = bytearray(page)
    i = o = 0

    def uleb():
        nonlocal i
        b = enc[i]
        i += 1
        if b < 0x80:
            return b
        b2 = enc[i]
        i += 1
        return (b & 0x7f) | (b2 << 7)
    while i < len(enc):
        o += uleb()
        n = uleb()
        out[o:o + n] = enc[i:i + n]
        i += n
        o += n
    return bytes(out)


def vmsd_len(obj):
    n = 0
    for f in obj.get("fields", []):
        n += f.get("array_len", 1) * f["size"]
    for s in obj.get("subsections", []):
        n += 1 + 1 + len(s["vmsd_name"]) + 4 + vmsd_len(s)
    return n


class Session:
    """Decodes a whole capture; see .segments, .states, .blobs."""

    def __init__(self, data):
        self.data = data
        self.blocks = {}            # name -> bytearray (committed RAM)
        self.last_block = None
        self.ignore_shared = False
        self.segments = []          # (start, end, expected reply bytes)
        self.states = []            # committed RAM digests, initial first
        self.blobs = []             # committed device blobs, initial first
        self.checkpoint_starts = []  # offset of each CHECKPOINT_REQUEST
        self.cut_checkpoint = None  # (start, offset where the data ends)
        self.layouts = []           # per complete checkpoint: offsets
        self._decode()

    # -- RAM --------------------------------------------------------------
    def _ram_records(self, r, sink):
        while True:
            w = r.u64()
            flags, off = w & 0xfff, w & ~0xfff
            if flags & (0x002 | 0x008 | 0x040 | 0x100):
                if flags & 0x020:
                    blk = self.last_block
                else:
                    blk = r.s8()
                    self.last_block = blk
            kind = flags & ~0x020
            if kind == 0x004:
                total, seen = off, 0
                while seen < total:
                    name = r.s8()
                    size = r.u64()
                    if self.ignore_shared:
                        r.u64()
                    self.blocks.setdefault(name, bytearray(size))
                    seen += size
            elif kind == 0x002:
                fill = r.u8()
                sink(blk, off, bytes([fill]) * PAGE, None)
            elif kind == 0x008:
                sink(blk, off, r.take(PAGE), None)
            elif kind == 0x040:
                assert r.u8() == 1
                n = r.u16()
                sink(blk, off, None, r.take(n))
            elif kind == 0x100:
                import zlib
                n = r.u32()
                sink(blk, off, zlib.decompress(r.take(n)), None)
            elif kind == 0x200:
                pass
            elif kind == 0x010:
                return
            else:
                raise ValueError("flags %#x at %#x" % (flags, r.p - 8))

    def _apply_now(self, blk, off, page, enc):
        mem = self.blocks[blk]
        if enc is not None:
            page = xbzrle_apply(mem[off:off + PAGE], enc)
        mem[off:off + PAGE] = page

    def digest(self):
        return {name: hashlib.sha256(mem).hexdigest()
                for name, mem in self.blocks.items()}

    # -- stream -------------------------------------------------------------
    def _find_vmdesc(self, r, start):
        d = self.data
        p = start
        while True:
            p = d.find(b"\x00\x06", p)
            if p < 0:
                raise Cut(len(d))
            if p + 7 <= len(d) and d[p + 6:p + 7] == b"{":
                n = struct.unpack(">I", d[p + 2:p + 6])[0]
                if p + 6 + n <= len(d):
                    try:
                        desc = json.loads(d[p + 6:p + 6 + n])
                    except ValueError:
                        desc = None
                    if desc and self._walk_devices(start, p, desc):
                        return p, p + 6 + n
            p += 1

    def _walk_devices(self, start, eof, desc):
        r = Reader(self.data, start)
        try:
            for dev in desc["devices"]:
                if r.u8() != 4:
                    return False
                sid = r.u32()
                name = r.s8()
                inst = r.u32()
                r.u32()
                if name != dev["name"] or inst != dev["instance_id"]:
                    return False
                r.take(dev["size"] if "vmsd_name" not in dev and "size" in dev
                       else vmsd_len(dev))
                if r.u8() != 0x7e or r.u32() != sid:
                    return False
        except (Cut, KeyError, UnicodeDecodeError):
            return False
        return r.p == eof

    def _records(self, r, sink, until_full):
        while True:
            t = r.u8()
            if t in (1, 4):
                if t == 4 and until_full:
                    return r.p - 1
                sid = r.u32()
                name = r.s8()
                r.u32()
                r.u32()
                assert name == "ram"
                self._ram_records(r, sink)
                assert r.u8() == 0x7e and r.u32() == sid
            elif t in (2, 3):
                sid = r.u32()
                self._ram_records(r, sink)
                assert r.u8() == 0x7e and r.u32() == sid
            elif t == 8:
                r.u16()
                r.take(r.u16())
            elif t == 0:
                return None
            else:
                raise ValueError("type %#x at %#x" % (t, r.p - 1))

    def _decode(self):
        r = Reader(self.data)
        assert r.u32() == 0x5145564D and r.u32() == 3
        assert r.u8() == 7
        self.machine = r.take(r.u32()).decode()
        while self.data[r.p] == 5:
            save = r.p
            r.u8()
            name = r.s8()
            if not name.startswith("configuration"):
                r.p = save
                break
            r.u32()
            if name == "configuration/capabilities":
                caps = [r.s8() for _ in range(r.u32())]
                self.ignore_shared = "x-ignore-shared" in caps
        full = self._records(r, self._apply_now, until_full=True)
        eof, end = self._find_vmdesc(r, full)
        self.initial_end = end
        self.blobs.append(self.data[full:eof + 1])
        self.states.append(self.digest())
        self.segments.append((0, end, struct.pack(">I", 0)))
        r.p = end
        while r.p < len(self.data):
            start = r.p
            pending = []
            try:
                assert r.u32() == 1
                self.checkpoint_starts.append(start)
                self.segments.append((start, r.p, struct.pack(">I", 2)))
                body = r.p
                assert r.u32() == 3
                live = r.p
                self._records(r, lambda *a: pending.append(a), False)
                eof = r.p - 1
                size_msg = r.p
                assert r.u32() == 4
                n = r.u64()
                blob_start = r.p
                blob = r.take(n)
                self.layouts.append(dict(request=start, send=body, live=live,
                                         eof=eof, size=size_msg,
                                         blob=blob_start, end=r.p))
            except Cut:
                self.cut_checkpoint = (start, len(self.data))
                self.segments.append((body, len(self.data), b""))
                break
            for rec in pending:
                self._apply_now(*rec)
            self.blobs.append(blob)
            self.states.append(self.digest())
            self.segments.append((body, r.p, struct.pack(">II", 5, 6)))
