#!/usr/bin/env python3
"""Benchmark (not a test): colo-primary's changed-page scan with page
digests against soft-dirty bits, inside Debian's cloud kernel (it has
soft-dirty; this host's kernel does not) booted under TCG with 2 vCPUs,
running bench/scan-bench (static; colo-primary's own dirty-scan.c).

Absolute times are those of a TCG guest (several times slower than the
host); the comparison between the two methods is the point.  Writes
bench/out/soft-dirty.{txt,png}.

  BENCH_SD_RAM_MIB    RAM sizes (default 256,1024)
  BENCH_SD_DIRTY_MIB  dirty sizes per scan (default 0,1,16,64)"""

import os
import re
import sys
import tempfile
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import colotest as ct  # noqa: E402

OUT = os.path.join(HERE, "out")
RAM = os.environ.get("BENCH_SD_RAM_MIB", "256,1024")
DIRTY = os.environ.get("BENCH_SD_DIRTY_MIB", "0,1,16,64")
LINE = re.compile(r"scan ram (\d+) MiB dirty (\d+) MiB: digest ([\d.]+) ms"
                  r"  soft-dirty ([\d.]+) ms  \((\S+)\)")


def main():
    os.makedirs(OUT, exist_ok=True)
    exe = os.path.join(ct.BUILD_ROOT, "bench", "scan-bench")
    with open(exe, "rb") as f:
        binary = f.read()
    runner = ("#!/bin/sh\necho \"scan-bench: kernel $(uname -r)\"\n"
              "/bin/scan-bench %s %s 5\necho scan-bench: done\n"
              "poweroff -f\n" % (RAM, DIRTY)).encode()
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    try:
        mem = max(int(x) for x in RAM.split(",")) + 768
        _p, out = ct.run_in_linux_guest(
            tmp, {"bin/scan-bench": binary, "guest/scan-bench": runner},
            "scan-bench", timeout=3000, mem_mb=mem)
    finally:
        subprocess.run(["rm", "-rf", tmp])
    rows = [(int(a), int(b), float(c), float(d), e)
            for a, b, c, d, e in LINE.findall(out)]
    kver = re.search(r"scan-bench: kernel (\S+)", out)
    lines = ["changed-page scan inside %s (TCG, 2 vCPUs), median of 5, ms"
             % (kver.group(1) if kver else "the guest")]
    for ram, dirty, dg, sd, method in rows:
        lines.append("  RAM %5d MiB, dirty %3d MiB: digest %8.2f   "
                     "soft-dirty %8.2f   (%.1fx)%s" % (
                         ram, dirty, dg, sd, dg / max(sd, 0.001),
                         "" if method == "soft-dirty" else
                         "  [fell back to " + method + "]"))
    if not rows:
        lines.append("  no figures; the guest said:\n" + out[-2000:])
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(OUT, "soft-dirty.txt"), "w") as f:
        f.write(text + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4))
        for ram in sorted({r[0] for r in rows}):
            sub = [r for r in rows if r[0] == ram]
            xs = [max(r[1], 0.5) for r in sub]
            ax.loglog(xs, [r[2] for r in sub], "o-",
                      label="digest, %d MiB RAM" % ram)
            ax.loglog(xs, [r[3] for r in sub], "s--",
                      label="soft-dirty, %d MiB RAM" % ram)
        ax.set_xlabel("dirty per scan (MiB; 0 drawn at 0.5)")
        ax.set_ylabel("scan ms (TCG guest)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(OUT, "soft-dirty.png"), dpi=100)
        print("plot:", os.path.join(OUT, "soft-dirty.png"))
    except ImportError:
        print("(python3-matplotlib missing: no plot)")


if __name__ == "__main__":
    main()
