"""Builds small QEMU migration streams byte by byte, for tests that need a
stream with one precise defect.  Follows the wire format of QEMU 7.2/10.0
(docs/migration-wire.rst)."""

import struct
import zlib

PAGE = 4096
ZERO, MEM_SIZE, PAGE_F, EOS, CONTINUE, XBZRLE, COMPRESS = \
    0x002, 0x004, 0x008, 0x010, 0x020, 0x040, 0x100


def str8(s):
    b = s.encode() if isinstance(s, str) else s
    assert len(b) <= 255
    return bytes([len(b)]) + b


def be32(v):
    return struct.pack(">I", v)


def be64(v):
    return struct.pack(">Q", v)


class Stream:
    """Header, configuration and a RAM section with the records you add."""

    def __init__(self, machine="pc-i440fx-10.0", blocks=(("pc.ram", 1 << 20),),
                 ignore_shared=False):
        self.b = bytearray()
        self.b += be32(0x5145564D) + be32(3)
        self.b += b"\x07" + be32(len(machine)) + machine.encode()
        if ignore_shared:
            self.b += b"\x05" + str8("configuration/capabilities") + be32(1)
            self.b += be32(1) + str8("x-ignore-shared")
        self.ignore_shared = ignore_shared
        self.section_id = 1
        total = sum(size for _n, size in blocks)
        self.b += b"\x01" + be32(self.section_id) + str8("ram") + be32(0) + \
            be32(4)
        self.b += be64(total | MEM_SIZE)
        for name, size in blocks:
            self.b += str8(name) + be64(size)
            if ignore_shared:
                self.b += be64(0)
        self.b += be64(EOS)
        self.footer()
        self.last_block = None

    def footer(self):
        self.b += b"\x7e" + be32(self.section_id)

    def part(self):
        self.b += b"\x02" + be32(self.section_id)
        return self

    def end_section(self):
        self.b += be64(EOS)
        self.footer()
        return self

    def _hdr(self, block, offset, flags):
        if block == self.last_block:
            self.b += be64(offset | flags | CONTINUE)
        else:
            self.b += be64(offset | flags) + str8(block)
            self.last_block = block

    def page(self, block, offset, data):
        assert len(data) == PAGE
        self._hdr(block, offset, PAGE_F)
        self.b += data
        return self

    def zero(self, block, offset, fill=0):
        self._hdr(block, offset, ZERO)
        self.b += bytes([fill])
        return self

    def xbzrle(self, block, offset, encoded, enc_byte=1, length=None):
        self._hdr(block, offset, XBZRLE)
        n = len(encoded) if length is None else length
        self.b += bytes([enc_byte]) + struct.pack(">H", n) + encoded
        return self

    def compressed(self, block, offset, payload):
        self._hdr(block, offset, COMPRESS)
        self.b += be32(len(payload)) + payload
        return self

    def finish(self):
        """EOF; no device sections and no VMDESCRIPTION."""
        self.b += b"\x00"
        return bytes(self.b)


def zlib_page(data):
    return zlib.compress(data, 1)


def xbzrle_encode(old, new):
    """Reference encoder (unchanged run, changed run, new bytes)."""
    out = bytearray()
    i = 0
    n = len(old)

    def uleb(v):
        return bytes([v]) if v < 0x80 else bytes([(v & 0x7f) | 0x80, v >> 7])
    while i < n:
        same = 0
        while i + same < n and old[i + same] == new[i + same]:
            same += 1
        if i + same == n:
            break
        diff = 0
        while i + same + diff < n and old[i + same + diff] != new[i + same + diff]:
            diff += 1
        out += uleb(same) + uleb(diff) + new[i + same:i + same + diff]
        i += same + diff
    return bytes(out)
