#!/usr/bin/env python3
"""Benchmark (not a test): latency of small NBD requests to colo-secondary.

A client on loopback TCP (this script, Python sockets with the kernel's
defaults, as a plain NBD client would be) connects, negotiates with
NBD_OPT_GO, then issues serial READs of 512 B, 4 KiB, 64 KiB and 1 MiB
(BENCH_NBD_READS each, 500) on a 64 MiB export, and 4 KiB WRITEs.  The
connect + GO time is measured over BENCH_NBD_CONNECTS (50).

    bench/nbd_latency.py [LABEL=PATH-TO-colo-secondary ...]

With no argument it measures $COLO_SECONDARY ("now").  Naming an older
build as a second binary gives the before/after of a change.  Writes
bench/out/nbd_latency.txt and nbd_latency.png (latency CDF of 4 KiB
reads per binary)."""

import os
import socket
import statistics
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import colotest as ct  # noqa: E402

OUT = os.path.join(HERE, "out")
READS = int(os.environ.get("BENCH_NBD_READS", "500"))
CONNECTS = int(os.environ.get("BENCH_NBD_CONNECTS", "50"))
MAGIC_REQ = 0x25609513


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise EOFError
        buf += d
    return buf


def connect_go(port):
    s = socket.create_connection(("127.0.0.1", port))
    recv_exact(s, 18)
    s.sendall(struct.pack(">I", 3))
    name = b"disk0"
    s.sendall(b"IHAVEOPT" + struct.pack(">II", 7, 6 + len(name)) +
              struct.pack(">I", len(name)) + name + b"\0\0")
    while True:
        _magic, _opt, typ, length = struct.unpack(">QIII", recv_exact(s, 20))
        recv_exact(s, length)
        if typ == 1:            # NBD_REP_ACK
            return s


def request(s, typ, off, length, payload=b""):
    s.sendall(struct.pack(">IHHQQI", MAGIC_REQ, 0, typ, 7, off, length) +
              payload)
    _m, err, _cookie = struct.unpack(">IIQ", recv_exact(s, 16))
    assert err == 0, err
    if typ == 0:
        recv_exact(s, length)


def measure(binary, tmp):
    image = os.path.join(tmp, "disk.img")
    with open(image, "wb") as f:
        f.write(os.urandom(64 << 20))
    os.environ["COLO_SECONDARY"] = binary
    ct.paths.SECONDARY = binary     # read at each start
    sec = ct.Secondary(tmp, extra=["-blockdev", "driver=file,node-name="
                                   "disk0,filename=" + image])
    try:
        sec.qmp.cmd("nbd-server-start", addr={
            "type": "inet", "data": {"host": "127.0.0.1", "port": "0"}})
        sec.qmp.cmd("nbd-server-add", device="disk0", writable=True)
        port = sec.qmp.cmd("x-query-nbd-server")["port"]
        res = {}
        t = []
        for _ in range(CONNECTS):
            t0 = time.perf_counter()
            s = connect_go(port)
            t.append((time.perf_counter() - t0) * 1000)
            s.close()
        res["connect+GO"] = t
        s = connect_go(port)
        for name, typ, size in (("read 512 B", 0, 512),
                                ("read 4 KiB", 0, 4096),
                                ("read 64 KiB", 0, 65536),
                                ("read 1 MiB", 0, 1 << 20),
                                ("write 4 KiB", 1, 4096)):
            t = []
            payload = os.urandom(size) if typ == 1 else b""
            for i in range(READS):
                off = (i * 7919 * 4096) % ((64 << 20) - size)
                off -= off % 512
                t0 = time.perf_counter()
                request(s, typ, off, size, payload)
                t.append((time.perf_counter() - t0) * 1000)
            res[name] = t
        s.close()
        return res
    finally:
        sec.quit()


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def main():
    runs = []
    for arg in sys.argv[1:] or ["now=" + ct.SECONDARY]:
        label, _, path = arg.partition("=")
        with tempfile.TemporaryDirectory(prefix="colo-bench-",
                                         dir="/dev/shm") as tmp:
            runs.append((label, measure(path, tmp)))
    lines = ["NBD on loopback TCP, serial requests, milliseconds "
             "(median / p99)", ""]
    names = list(runs[0][1])
    lines.append("%-14s" % "" + "".join("%22s" % label for label, _ in runs))
    for n in names:
        lines.append("%-14s" % n + "".join(
            "%22s" % ("%.3f / %.3f" % (statistics.median(r[n]),
                                       pct(r[n], 99)))
            for _, r in runs))
    text = "\n".join(lines)
    print(text)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "nbd_latency.txt"), "w") as f:
        f.write(text + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no matplotlib: no plot)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, r in runs:
        v = sorted(r["read 4 KiB"])
        ax.plot(v, [(i + 1) / len(v) for i in range(len(v))], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("4 KiB NBD read, ms (log)")
    ax.set_ylabel("fraction of reads")
    ax.set_title("colo-secondary NBD: serial 4 KiB reads on loopback")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "nbd_latency.png"), dpi=110)


if __name__ == "__main__":
    main()
