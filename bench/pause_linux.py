#!/usr/bin/env python3
"""Benchmark (not a test): where the VM's pause goes when colo-primary
protects the real Linux guest (256 MiB, TCG, x-checkpoint-delay 100 ms,
colo-primary's default dirty tracking: uffd-wp where the kernel has it,
else digests; the line says which).

Each checkpoint's pause is split by colo-primary itself (its progress
lines): QEMU's stop, the device-state capture (the scan runs alongside),
the part of the scan left after the capture, QEMU's cont.  Two guest
loads: idle (its line service waiting), and busy (a client pulls bulk TCP
data from it the whole time).  Prints median / p99 / max of each part and
writes bench/out/pause-linux.{txt,png}.

  BENCH_PAUSE_CHECKPOINTS  checkpoints per load (default 300)
  BENCH_PAUSE_ARGS         extra colo-primary arguments (e.g. for
                           --scan-threads 1)"""

import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import colotest as ct  # noqa: E402

OUT = os.path.join(HERE, "out")
N = int(os.environ.get("BENCH_PAUSE_CHECKPOINTS", "300"))
EXTRA = shlex.split(os.environ.get("BENCH_PAUSE_ARGS", ""))
LINE = re.compile(r"checkpoint (\d+): pause ([\d.]+) ms \(stop ([\d.]+), "
                  r"devices ([\d.]+), scan \+([\d.]+), cont ([\d.]+)\), "
                  r"(\d+) dirty")
PARTS = ["pause", "stop", "devices", "scan", "cont"]
TRACKING = set()


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def run(load):
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    ns = ct.NetNs("pb")
    g = client = None
    try:
        g = ct.ProtectedLinuxGuest(tmp, ns, agent_args=[
            "--x-checkpoint-delay", "100"] + EXTRA)
        if load == "busy":
            client = g.client("bulk", ct.GUEST_IP, "7780", "3600")
        start = len(LINE.findall(g.agent_log_text()))
        ct.wait_for(lambda: len(LINE.findall(g.agent_log_text())) >=
                    start + N, N * 2 + 120, "%d checkpoints" % N, 1)
        rows = [tuple(float(x) for x in m[1:7]) + (int(m[6]),)
                for m in LINE.findall(g.agent_log_text())[start:start + N]]
        m = re.search(r"^dirty tracking: (.*)$", g.agent_log_text(), re.M)
        TRACKING.add(m.group(1) if m else "?")
    finally:
        if client:
            client.kill()
            client.wait()
        if g:
            g.close()
        ns.close()
        subprocess.run(["rm", "-rf", tmp])
    return rows


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = ["pause of the 256 MiB Linux guest, TCG, 100 ms interval, %d "
             "checkpoints per load%s; ms" % (
                 N, (" (colo-primary " + " ".join(EXTRA) + ")")
                 if EXTRA else "")]
    results = {}
    for load in ("idle", "busy"):
        rows = run(load)
        results[load] = rows
        lines.append("%s (dirty pages median %d):" % (
            load, pct([r[6] for r in rows], 0.5)))
        for i, part in enumerate(PARTS):
            vals = [r[i] for r in rows]
            lines.append("  %-8s median %6.2f   p99 %7.2f   max %7.2f" % (
                part, pct(vals, 0.5), pct(vals, 0.99), max(vals)))
        worst = sorted(rows, key=lambda r: -r[0])[:3]
        for r in worst:
            lines.append("  worst: pause %.1f = stop %.1f + devices %.1f + "
                         "scan %.1f + cont %.1f (%d dirty pages)" % (
                             r[0], r[1], r[2], r[3], r[4], r[6]))
    lines.insert(1, "dirty tracking: " + ", ".join(sorted(TRACKING)))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(OUT, "pause-linux.txt"), "w") as f:
        f.write(text + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, load in zip(axes, ("idle", "busy")):
            rows = results[load]
            ax.boxplot([[r[i] for r in rows] for i in range(5)],
                       labels=PARTS, whis=(1, 99))
            ax.set_title("Linux guest, %s" % load)
            ax.set_ylabel("ms")
        fig.tight_layout()
        fig.savefig(os.path.join(OUT, "pause-linux.png"), dpi=100)
        print("plot:", os.path.join(OUT, "pause-linux.png"))
    except ImportError:
        print("(python3-matplotlib missing: no plot)")


if __name__ == "__main__":
    time.sleep(0)
    main()
