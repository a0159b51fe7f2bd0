#!/usr/bin/env python3
"""Benchmark (not a test): colo-primary's pause per checkpoint (median,
p99) and checkpoints per second, for the colo-guest (keeps 4 MiB dirty)
in 256 MiB and 1 GiB VMs under TCG, hash-based dirty tracking (this
kernel has no soft-dirty).  Writes bench/out/colo-primary.txt."""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import colotest as ct  # noqa: E402

OUT = os.path.join(HERE, "out")
PRIMARY = os.path.join(ct.BUILD_ROOT, "tools", "colo-primary")
SIZES = [int(x) for x in os.environ.get("BENCH_GUEST_MIB",
                                        "256,1024").split(",")]
N = int(os.environ.get("BENCH_CHECKPOINTS", "30"))


def run(mib):
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    vm = ct.Qemu("10.0", tmp, machine="pc", mem_mb=mib, bios=ct.GUEST_BIOS)
    sdir = os.path.join(tmp, "sec")
    os.makedirs(sdir)
    sec = ct.ColoSecondary(sdir)
    try:
        ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
        vm.qmp.close()
        t0 = time.monotonic()
        p = subprocess.run([PRIMARY, "--qmp", vm.qmp_path, "--ram-file",
                            vm.ram_path, "--connect",
                            "tcp:127.0.0.1:%d" % sec.port,
                            "--checkpoints", str(N),
                            "--x-checkpoint-delay", "0"],
                           stdout=subprocess.PIPE, check=True, timeout=600)
        wall = time.monotonic() - t0
        out = p.stdout.decode()
        pauses = [float(x) for x in re.findall(r"pause ([0-9.]+) ms", out)]
        dirty = [int(x) for x in re.findall(r"ms, (\d+) dirty", out)]
        pauses.sort()
        return (mib, statistics.median(pauses),
                pauses[min(len(pauses) - 1, int(len(pauses) * 0.99))],
                N / wall, statistics.median(dirty) / 256.0)
    finally:
        vm.kill()
        sec.quit()
        subprocess.run(["rm", "-rf", tmp])


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = ["colo-primary, colo-guest (4 MiB dirty), TCG, x-checkpoint-delay"
             " 0, %d checkpoints" % N,
             "  guest MiB  pause median  pause p99  checkpoints/s  dirty MiB"]
    for mib in SIZES:
        r = run(mib)
        lines.append("  %9d  %9.1f ms  %6.1f ms  %13.1f  %9.1f" % r)
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(OUT, "colo-primary.txt"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
