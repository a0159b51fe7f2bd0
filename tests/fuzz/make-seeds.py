#!/usr/bin/env python3
"""Writes the seed corpora of the fuzzers into DIR/<fuzzer>/:
stream: the real QEMU streams of tests/data and the COLO captures' initial
streams; colo: checkpoints for fuzz-colo's fixed initial stream (pc.ram
1 MiB, /rom@etc/fuzz 64 KiB, RAM section id 1), plus real checkpoints cut
from the captures; xbzrle: real and synthetic records; qmp: requests;
nbd: client sessions (handshake, options, requests)."""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "functional"))
import colodecode  # noqa: E402
import streamgen as sg  # noqa: E402

DATA = os.path.join(HERE, "..", "data")


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def checkpoint(records, blob=b"\x00", switchover=True):
    out = sg.be32(1) + sg.be32(3)
    if switchover:
        out += b"\x08\x00\x0b\x00\x00"
    out += b"\x03" + sg.be32(1) + records + sg.be64(sg.EOS) + b"\x7e" + \
        sg.be32(1) + b"\x00"
    out += sg.be32(4) + sg.be64(len(blob)) + blob
    return out


def rec(word, name=None, payload=b""):
    out = sg.be64(word)
    if name is not None:
        out += sg.str8(name)
    return out + payload


def main(outdir):
    stream = os.path.join(outdir, "fuzz-stream")
    for n in os.listdir(DATA):
        if n.endswith(".mig"):
            with open(os.path.join(DATA, n), "rb") as f:
                write(stream, n, f.read())
    for n in ("colo72kvm", "colo-fake"):
        with open(os.path.join(DATA, n + ".p2s.bin"), "rb") as f:
            s = colodecode.Session(f.read())
        write(stream, n + "-initial", s.data[:s.initial_end])
        colo = os.path.join(outdir, "fuzz-colo")
        for i, lay in enumerate(s.layouts[:3]):
            write(colo, "%s-ckpt%d" % (n, i), s.data[lay["request"]:lay["end"]])
    # VMDESCRIPTIONs in the syntaxes json-glib accepts beyond JSON (the
    # security review's crash: a '"' inside '...' hid the brackets)
    with open(os.path.join(DATA, "pc64.mig"), "rb") as f:
        pc64 = f.read()
    eof = 0x0997ba
    for name, js in (("vmdesc-squote", b"{'a':'\"','b':" + b"[" * 3000),
                     ("vmdesc-comment", b"/* \" */ {\"a\":" + b"[" * 3000),
                     ("vmdesc-both", b"{'x':'\"','y':/* ' */" +
                      b"{\"a\":" * 2000),
                     ("vmdesc-hex", b'{"page_size":0x1000,"devices":[]}')):
        write(stream, name, pc64[:eof + 1] + b"\x06" + sg.be32(len(js)) + js)
    s = sg.Stream(blocks=(("pc.ram", 1 << 20), ("/rom@etc/x", 4096)))
    s.part().page("pc.ram", 0, bytes(range(256)) * 16).zero("pc.ram", 4096)
    s.xbzrle("pc.ram", 0, b"\x00\x01\xaa").compressed(
        "pc.ram", 8192, sg.zlib_page(b"z" * 4096)).end_section()
    write(stream, "synthetic", s.finish())

    colo = os.path.join(outdir, "fuzz-colo")
    page = bytes(range(256)) * 16
    blob = b"\x04" + sg.be32(0) + sg.str8("timer") + sg.be32(0) + \
        sg.be32(2) + bytes(24) + b"\x7e" + sg.be32(0) + b"\x00"
    recs = rec(0x3000 | sg.PAGE_F | sg.CONTINUE, payload=page)
    recs += rec(0x4000 | sg.ZERO | sg.CONTINUE, payload=b"\x00")
    recs += rec(0x0 | sg.XBZRLE, "pc.ram", b"\x01" + struct.pack(">H", 5) +
                b"\x00\x03abc")
    recs += rec(0x0 | sg.PAGE_F, "/rom@etc/fuzz", page)
    one = checkpoint(recs, blob)
    write(colo, "one", one)
    write(colo, "two", one + checkpoint(b"", blob, switchover=False))
    write(colo, "cut", one + one[:len(one) // 2])

    x = os.path.join(outdir, "fuzz-xbzrle")
    write(x, "real", bytes.fromhex("0001a4ff0f02d1dbfc0f01ec"))
    write(x, "long", b"\x00\x7f" + b"q" * 127 + b"\x80\x01\x05abcde")

    q = os.path.join(outdir, "fuzz-qmp")
    write(q, "caps", b'{"execute": "qmp_capabilities"}\n'
          b'{"execute": "query-migrate", "id": 1}\n')
    write(q, "set", b'{"execute":"qmp_capabilities"}\n'
          b'{"execute":"migrate-set-capabilities","arguments":'
          b'{"capabilities":[{"capability":"x-colo","state":true}]}}\n'
          b'{"execute":"migrate-set-parameters","arguments":'
          b'{"x-checkpoint-delay":100}}\n'
          b'{"execute":"query-colo-status"}\n'
          b'{"execute":"query-migrate-parameters"}\n')
    write(q, "quotes", b"{'execute':'qmp_capabilities'}\n"
          b"{'execute':'query-status','id':'a\"b\\'c'}\n"
          b"/* \" */ {\"execute\":\"query-status\"}\n"
          b"{'x':'\"','y':" + b"[" * 1200 + b"\n"
          b'{"execute":"query-status","execute":"query-version"}\n'
          b'{"execute":"migrate-set-parameters","arguments":'
          b'{"downtime-limit":18446744073709551616}}\n'
          b'{"execute":"query-status","id":1e999}\n'
          b'{"execute":"query-status","id":"\\ud800"}\n')


    n = os.path.join(outdir, "fuzz-nbd")

    def opt(code, data=b""):
        return b"IHAVEOPT" + struct.pack(">II", code, len(data)) + data

    def go(name):
        return opt(7, struct.pack(">I", len(name)) + name + b"\0\1\0\3")

    def req(typ, off, length, payload=b"", flags=0):
        return struct.pack(">IHHQQI", 0x25609513, flags, typ, 1, off,
                           length) + payload

    flags = struct.pack(">I", 3)
    io = (req(1, 4096, 8192, b"w" * 8192, flags=1) + req(0, 0, 12288) +
          req(1, 100, 300, b"u" * 300) + req(3, 0, 0) + req(4, 0, 4096) +
          req(6, 8192, 65536) + req(0, (1 << 20) - 512, 512) + req(2, 0, 0))
    for name in (b"disk0", b"disk1", b"ro"):
        write(n, "go-" + name.decode(), flags + opt(3) + opt(6, go(name)[16:])
              + go(name) + io)
    write(n, "export-name", flags + opt(1, b"disk1") + io)
    write(n, "bad", flags + opt(8) + opt(5) + opt(99, b"x" * 10) +
          go(b"nope") + go(b"disk1") + req(0, 1 << 30, 4096) + b"junk")


if __name__ == "__main__":
    main(sys.argv[1])
