#!/usr/bin/env python3
"""Benchmark (not a test): one protection session left running, to see
whether colo-primary, colo-secondary and QEMU hold their memory, file
descriptors and threads flat over many checkpoints.

The cluster soak (make soak-long) strikes a fault every few minutes, so
no colo-primary or colo-secondary there lives long enough to show a slow
leak.  Here one stock QEMU 10.0 (halt.bios, BENCH_LONG_MIB MiB, TCG:
the checkpoint paths run in full, the guest costs no CPU) is protected
for BENCH_LONG_MINUTES minutes on the 100 ms timer with uffd-wp write
tracking.  Every minute: each process's RSS, open fds and threads and the
standby's RAM folder.  Prints the figures, the RSS growth per hour of
each process after its first 10 minutes (a least-squares slope), and
writes bench/out/long_session.txt and bench/out/long_session.png."""

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
MINUTES = int(os.environ.get("BENCH_LONG_MINUTES", "60"))
MIB = int(os.environ.get("BENCH_LONG_MIB", "256"))


def proc_figures(pid):
    rss = anon = threads = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return {"rss_kb": rss, "anon_kb": anon, "threads": threads,
            "fds": len(os.listdir("/proc/%d/fd" % pid))}


def slope(points):
    """Least-squares slope of (t, value) points."""
    return statistics.linear_regression([t for t, _ in points],
                                        [v for _, v in points]).slope


def plot(samples, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for name in ("colo-primary", "colo-secondary", "qemu"):
        t = [s["t"] / 60.0 for s in samples]
        a.plot(t, [s[name]["rss_kb"] / 1024.0 for s in samples], ".-",
               label=name)
        b.plot(t, [s[name]["fds"] for s in samples], ".-", label=name)
    a.set_ylabel("RSS (MiB)")
    a.legend(fontsize=7)
    b.set_ylabel("open fds")
    b.set_xlabel("minutes")
    fig.suptitle("one protection session, %d MiB guest, 100 ms timer"
                 % MIB)
    fig.tight_layout()
    fig.savefig(path)


def main():
    ct.require_qemu("10.0")
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    vm = sec = agent = None
    samples = []
    try:
        vm = ct.Qemu("10.0", tmp, mem_mb=MIB, bios=ct.HALT_BIOS,
                     ram_path=os.path.join(tmp, "vm.ram"))
        vm.qmp.close()
        os.makedirs(os.path.join(tmp, "sec"))
        sec = ct.ColoSecondary(os.path.join(tmp, "sec"))
        agent = subprocess.Popen(
            [ct.PRIMARY_AGENT, "--qmp", vm.qmp_path, "--ram-file",
             vm.ram_path, "--connect", "tcp:127.0.0.1:%d" % sec.port,
             "--qemu-pid", str(vm.proc.pid), "-q"],
            stdout=subprocess.DEVNULL)
        ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")[
            "x-checkpoints"] >= 10, 300, "protection")
        t0 = time.monotonic()
        while True:
            t = time.monotonic() - t0
            if agent.poll() is not None:
                raise RuntimeError("colo-primary ended: %d" % agent.returncode)
            samples.append({
                "t": t, "checkpoints": sec.qmp.cmd("query-colo-status")[
                    "x-checkpoints"],
                "colo-primary": proc_figures(agent.pid),
                "colo-secondary": proc_figures(sec.proc.pid),
                "qemu": proc_figures(vm.proc.pid),
                "ram_dir": ct.folder_bytes(sec.ram_dir)})
            s = samples[-1]
            print("%5.1f min: %7d checkpoints; RSS MiB primary %.1f "
                  "(anon %.2f) secondary %.1f (anon %.2f) qemu %.1f; fds "
                  "%d/%d/%d; threads %d/%d/%d; RAM folder %.1f MiB" % (
                      t / 60, s["checkpoints"],
                      s["colo-primary"]["rss_kb"] / 1024.0,
                      s["colo-primary"]["anon_kb"] / 1024.0,
                      s["colo-secondary"]["rss_kb"] / 1024.0,
                      s["colo-secondary"]["anon_kb"] / 1024.0,
                      s["qemu"]["rss_kb"] / 1024.0,
                      s["colo-primary"]["fds"], s["colo-secondary"]["fds"],
                      s["qemu"]["fds"], s["colo-primary"]["threads"],
                      s["colo-secondary"]["threads"], s["qemu"]["threads"],
                      s["ram_dir"] / 2 ** 20), flush=True)
            if t >= MINUTES * 60:
                break
            time.sleep(60 - (time.monotonic() - t0) % 60)
    finally:
        if agent and agent.poll() is None:
            agent.terminate()
            agent.wait()
        if vm:
            vm.kill()
        if sec:
            sec.quit()
        subprocess.run(["rm", "-rf", tmp])
    lines = ["%d checkpoints in %.0f minutes (%.1f/s)" % (
        samples[-1]["checkpoints"] - samples[0]["checkpoints"],
        samples[-1]["t"] / 60, (samples[-1]["checkpoints"] -
                                samples[0]["checkpoints"]) /
        max(1, samples[-1]["t"]))]
    for name in ("colo-primary", "colo-secondary", "qemu"):
        late = [(s["t"] / 3600.0, s[name]["rss_kb"] / 1024.0)
                for s in samples if s["t"] >= 600]
        late_anon = [(s["t"] / 3600.0, s[name]["anon_kb"] / 1024.0)
                     for s in samples if s["t"] >= 600]
        fds = [s[name]["fds"] for s in samples]
        thr = [s[name]["threads"] for s in samples]
        lines.append("%-15s RSS %.1f -> %.1f MiB (anonymous %.1f -> %.1f), "
                     "growth after 10 min %+.2f MiB/h (anonymous %+.2f); "
                     "fds %d-%d; threads %d-%d" % (
                         name, samples[0][name]["rss_kb"] / 1024.0,
                         samples[-1][name]["rss_kb"] / 1024.0,
                         samples[0][name]["anon_kb"] / 1024.0,
                         samples[-1][name]["anon_kb"] / 1024.0,
                         slope(late) if len(late) >= 3 else 0.0,
                         slope(late_anon) if len(late_anon) >= 3 else 0.0,
                         min(fds), max(fds), min(thr), max(thr)))
    with open(os.path.join(OUT, "long_session.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plot(samples, os.path.join(OUT, "long_session.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
