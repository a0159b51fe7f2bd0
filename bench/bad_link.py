#!/usr/bin/env python3
"""Benchmark (not a test): checkpoints over a slow or distant link.

The colo-guest (64 MiB, TCG; it changes about 4 MiB between two
checkpoints) is protected through colotest.BadLink, a proxy that delays
each direction by 0, 5 or 20 ms and serialises it at 1 Gb/s or 100 Mb/s.
For each: the pause (median, p99: the VM is stopped only for it), the
whole checkpoint from stop to the secondary's LOADED (median), and
checkpoints per second, over BENCH_CHECKPOINTS checkpoints on the 100 ms
timer.  Writes bench/out/bad_link.txt and bench/out/bad_link.png."""

import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import colotest as ct  # noqa: E402

OUT = os.path.join(HERE, "out")
N = int(os.environ.get("BENCH_CHECKPOINTS", "40"))
DELAYS = [0, 5, 20]
RATES = [(1e9, "1 Gb/s"), (100e6, "100 Mb/s")]
LINE = re.compile(r"checkpoint \d+: pause ([\d.]+) ms .*started ([\d.]+), "
                  r"loaded ([\d.]+)")


def one(vm, tmp, delay_ms, rate_bps):
    sdir = tempfile.mkdtemp(dir=tmp)
    sec = ct.ColoSecondary(sdir)
    link = ct.BadLink(sec.port, delay_ms=delay_ms, rate_bps=rate_bps)
    try:
        p = subprocess.run([ct.PRIMARY_AGENT, "--qmp", vm.qmp_path,
                            "--ram-file", vm.ram_path, "--connect",
                            "tcp:127.0.0.1:%d" % link.port, "--checkpoints",
                            str(N), "--qemu-pid", str(vm.proc.pid)],
                           stdout=subprocess.PIPE, text=True, check=True,
                           timeout=900)
    finally:
        link.close()
        sec.quit()
        subprocess.run(["rm", "-rf", sdir])
    rows = [(float(a), (float(c) - float(b)) * 1000)
            for a, b, c in LINE.findall(p.stdout)]
    pauses = sorted(r[0] for r in rows)
    return {"median": statistics.median(pauses),
            "p99": pauses[min(len(pauses) - 1, int(len(pauses) * 0.99))],
            "total": statistics.median(r[1] for r in rows),
            "cps": float(re.search(r"([\d.]+) checkpoints/s",
                                   p.stdout).group(1))}


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for _rate, label in RATES:
        a.plot(DELAYS, [results[(d, label)]["median"] for d in DELAYS],
               "o-", label="pause median, " + label)
        a.plot(DELAYS, [results[(d, label)]["total"] for d in DELAYS],
               "s--", label="stop -> LOADED, " + label)
        b.plot(DELAYS, [results[(d, label)]["cps"] for d in DELAYS], "o-",
               label=label)
    a.set_xlabel("one-way delay (ms)")
    a.set_ylabel("ms")
    a.set_yscale("log")
    a.legend(fontsize=8)
    b.set_xlabel("one-way delay (ms)")
    b.set_ylabel("checkpoints/s (100 ms timer)")
    b.set_ylim(bottom=0)
    b.legend(fontsize=8)
    fig.suptitle("colo-guest 64 MiB (TCG), about 4 MiB per checkpoint, "
                 "over a shaped link")
    fig.tight_layout()
    fig.savefig(path)


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    vm = ct.Qemu("10.0", tmp, mem_mb=64, bios=ct.GUEST_BIOS)
    results = {}
    lines = ["%-9s %-9s %9s %9s %12s %8s" % ("delay", "rate", "pause", "p99",
                                           "stop->LOADED", "ckpt/s")]
    try:
        ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
        vm.qmp.close()
        for rate, label in RATES:
            for d in DELAYS:
                r = results[(d, label)] = one(vm, tmp, d, rate)
                lines.append("%-9s %-9s %6.2f ms %6.2f ms %9.1f ms %8.2f" % (
                    "%d ms" % d, label, r["median"], r["p99"], r["total"],
                    r["cps"]))
                print(lines[-1], flush=True)
    finally:
        vm.kill()
        subprocess.run(["rm", "-rf", tmp])
    with open(os.path.join(OUT, "bad_link.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plot(results, os.path.join(OUT, "bad_link.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
