#!/usr/bin/env python3
"""Benchmark (not a test): many VMs protected into one standby host.

1, 4 and 8 colo-guest VMs (BENCH_DENSITY_MIB each: 256 under TCG; the
guest changes about 4 MiB between two checkpoints) run on this machine,
each protected by its own colo-primary into its own colo-secondary, all
at once, for BENCH_CHECKPOINTS checkpoints on the 100 ms timer, with
the write tracking of BENCH_TRACKING (uffd-wp, digest).  Per VM: the
pause (median, p99) against the same VM protected alone, and checkpoints
per second, and, for the same number of running VMs with only one of
them protected, that one's pause (what the guests' own CPU use costs a
pause on this host); on the standby side: colo-secondary's RSS (its anonymous
memory: what it holds beside the RAM files), the RAM files and the
cache folder, per VM.  Writes bench/out/density.txt and
bench/out/density.png."""

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
MIB = int(os.environ.get("BENCH_DENSITY_MIB", "256"))
COUNTS = [int(x) for x in os.environ.get("BENCH_DENSITY_VMS",
                                         "1,4,8").split(",")]
N = int(os.environ.get("BENCH_CHECKPOINTS", "40"))
TRACKING = os.environ.get("BENCH_TRACKING", "uffd-wp,digest").split(",")
PAUSE = re.compile(r"checkpoint \d+: pause ([\d.]+) ms")


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def run(count, tracking, tmp, protected=None):
    """@count VMs running, the first @protected (all if None) protected
    at once; per protected VM (pauses, checkpoints/s) and the standby's
    memory per VM at the end (MiB: anonymous RSS, files)."""
    vms, secs, agents = [], [], []
    protected = count if protected is None else protected
    try:
        for i in range(count):
            d = tempfile.mkdtemp(dir=tmp)
            vms.append(ct.Qemu("10.0", d, mem_mb=MIB, bios=ct.GUEST_BIOS,
                               ram_path=os.path.join(d, "vm.ram")))
            if i < protected:
                sd = os.path.join(d, "sec")
                os.makedirs(sd)
                secs.append(ct.ColoSecondary(sd))
        for vm in vms:
            ct.wait_for(lambda: "C=" in vm.serial(), 120, "the guests")
            vm.qmp.close()
        for vm, sec in zip(vms, secs):
            agents.append(subprocess.Popen(
                [ct.PRIMARY_AGENT, "--qmp", vm.qmp_path, "--ram-file",
                 vm.ram_path, "--connect", "tcp:127.0.0.1:%d" % sec.port,
                 "--checkpoints", str(N), "--qemu-pid", str(vm.proc.pid),
                 "--dirty-tracking", tracking],
                stdout=subprocess.PIPE, text=True))
        # the standby's memory while every session runs
        ct.wait_for(lambda: all(s.qmp.cmd("query-colo-status")
                                ["x-checkpoints"] >= N // 2 for s in secs),
                    900, "every VM half way")
        anon = [status_kb(s.proc.pid, "RssAnon") / 1024.0 for s in secs]
        files = [ct.folder_bytes(s.ram_dir) / 2 ** 20 for s in secs]
        results = []
        for a in agents:
            out, _ = a.communicate(timeout=1800)
            if a.returncode != 0:
                raise RuntimeError("colo-primary failed:\n" + out[-2000:])
            pauses = sorted(float(x) for x in PAUSE.findall(out))
            results.append({
                "median": statistics.median(pauses),
                "p99": pauses[min(len(pauses) - 1,
                                  int(len(pauses) * 0.99))],
                "cps": float(re.search(r"([\d.]+) checkpoints/s",
                                       out).group(1))})
        return results, anon, files
    finally:
        for a in agents:
            if a.poll() is None:
                a.kill()
                a.wait()
        for vm in vms:
            vm.kill()
        for s in secs:
            s.quit()


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for tracking in TRACKING:
        pts = [r for r in rows if r["tracking"] == tracking]
        a.plot([r["vms"] for r in pts], [r["median"] for r in pts], "o-",
               label="pause median, " + tracking)
        a.plot([r["vms"] for r in pts], [r["p99"] for r in pts], "s--",
               label="pause p99, " + tracking)
        a.plot([r["vms"] for r in pts],
               [r["one_of_n"] or r["median"] for r in pts], "x:",
               label="pause median, 1 of N protected, " + tracking)
        b.plot([r["vms"] for r in pts],
               [r["files"] + r["anon"] for r in pts], "o-",
               label="standby per VM, " + tracking)
    b.axhline(MIB, color="grey", linestyle=":", label="guest RAM")
    a.set_xlabel("VMs protected at once")
    a.set_ylabel("ms")
    a.legend(fontsize=7)
    b.set_xlabel("VMs protected at once")
    b.set_ylabel("MiB per VM (files + anonymous)")
    b.set_ylim(bottom=0)
    b.legend(fontsize=7)
    fig.suptitle("colo-guest %d MiB (TCG) per VM, one host" % MIB)
    fig.tight_layout()
    fig.savefig(path)


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    rows = []
    lines = ["%-8s %4s %10s %10s %10s %8s %12s %10s %14s" % (
        "tracking", "VMs", "pause", "p99", "vs alone", "ckpt/s",
        "standby/VM", "anon/VM", "1 of N alone")]
    try:
        for tracking in TRACKING:
            alone = None
            for count in COUNTS:
                res, anon, files = run(count, tracking, tmp)
                # the same host load with only one VM protected: what
                # the guests' own CPU use does to a pause (2 CPUs here)
                one = run(count, tracking, tmp, 1)[0][0]["median"] \
                    if count > 1 else None
                med = statistics.median(r["median"] for r in res)
                p99 = max(r["p99"] for r in res)
                if alone is None:
                    alone = med
                row = {"tracking": tracking, "vms": count, "median": med,
                       "p99": p99, "cps": statistics.median(
                           r["cps"] for r in res),
                       "anon": statistics.median(anon),
                       "files": statistics.median(files),
                       "one_of_n": one}
                rows.append(row)
                lines.append("%-8s %4d %7.2f ms %7.2f ms %9.2fx %8.2f "
                             "%8.0f MiB %6.1f MiB %11s" % (
                                 tracking, count, med, p99, med / alone,
                                 row["cps"], row["files"] + row["anon"],
                                 row["anon"], "%.2f ms" % one if one
                                 else "-"))
                print(lines[-1], flush=True)
                time.sleep(2)
    finally:
        subprocess.run(["rm", "-rf", tmp])
    with open(os.path.join(OUT, "density.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plot(rows, os.path.join(OUT, "density.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
