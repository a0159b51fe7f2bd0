#!/usr/bin/env python3
"""Benchmark (not a test): failover time, from x-colo-lost-heartbeat to
the guest running again in stock QEMU 10.0 (and to its first serial line),
for 256 MiB and 1 GiB guests protected by colo-primary.  Writes
bench/out/failover.txt."""

import os
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
REPS = int(os.environ.get("BENCH_REPS", "3"))


def once(mib):
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    vm = ct.Qemu("10.0", tmp, machine="pc", mem_mb=mib, bios=ct.GUEST_BIOS)
    serial = os.path.join(tmp, "resumed.log")
    args = ("-nodefaults -display none -accel tcg -bios %s -serial file:%s"
            % (ct.GUEST_BIOS, serial))
    sdir = os.path.join(tmp, "sec")
    os.makedirs(sdir)
    sec = ct.ColoSecondary(sdir, extra=["-failover-args", args])
    pid = None
    agent = None
    try:
        ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
        vm.qmp.close()
        agent = subprocess.Popen(
            [PRIMARY, "--qmp", vm.qmp_path, "--ram-file", vm.ram_path,
             "--connect", "tcp:127.0.0.1:%d" % sec.port,
             "--x-checkpoint-delay", "100", "-q"])
        ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")[
            "x-checkpoints"] >= 3, 120, "checkpoints")
        vm.proc.kill()
        sec.qmp.wait_event("COLO_EXIT", 30)
        t0 = time.monotonic()
        sec.qmp.cmd("x-colo-lost-heartbeat")
        ev = sec.qmp.wait_event("X_COLO_FAILOVER", 60)
        t_run = time.monotonic() - t0
        pid = ev["data"]["pid"]
        ct.wait_for(lambda: ct.guest_counters(serial), 60, "output", 0.002)
        t_out = time.monotonic() - t0
        return t_run, ev["data"]["resume-us"] / 1e6, t_out
    finally:
        if agent:
            agent.kill()
            agent.wait()
        ct.kill_pid(pid)
        vm.kill()
        sec.quit()
        subprocess.run(["rm", "-rf", tmp])


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = ["failover: x-colo-lost-heartbeat -> guest running in stock "
             "QEMU 10.0 (median of %d)" % REPS,
             "  guest MiB  to RESUME event  inside QEMU  to first serial line"]
    for mib in SIZES:
        r = [once(mib) for _ in range(REPS)]
        lines.append("  %9d  %11.0f ms  %8.0f ms  %17.0f ms" % (
            mib, statistics.median(x[0] for x in r) * 1000,
            statistics.median(x[1] for x in r) * 1000,
            statistics.median(x[2] for x in r) * 1000))
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(OUT, "failover.txt"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
