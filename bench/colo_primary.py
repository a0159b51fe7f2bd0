#!/usr/bin/env python3
"""Benchmark (not a test): the VM's pause per checkpoint (median, p99) and
checkpoints per second when colo-primary protects a stock QEMU VM, for
256 MiB, 1 GiB and 4 GiB guests at dirty rates of ~0, 16 and 128 MiB/s (the
PIT-paced colo-guest variants), x-checkpoint-delay 100 ms, per way of
finding the written pages (--dirty-tracking):

  colo-primary digest + QEMU 10.0, TCG      (every page digested)
  colo-primary uffd-wp + QEMU 10.0, TCG     (where the kernel has it)
  colo-primary soft-dirty + QEMU 10.0, TCG  (where the kernel has it)
  the same under KVM                        (when /dev/kvm works)
  QEMU 7.2's own COLO, KVM                  (stock primary, pause = its
                                             STOP -> RESUME events;
                                             colo-secondary as the
                                             secondary)

plus the target case (256 MiB, 16 MiB dirty per checkpoint, TCG), the
most checkpoints per second (x-checkpoint-delay 0) and the guest's own
write speed (the unpaced colo-guest's page writes per second) unprotected
and protected by each method: what its write faults cost it.  Writes
bench/out/colo-primary.txt, colo-primary.png (pause per rate and size)
and colo-primary-ram.png (pause against RAM size, per method)."""

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
GUESTS = os.path.join(ct.BUILD_ROOT, "tests", "guest")
SIZES = [int(x) for x in os.environ.get("BENCH_GUEST_MIB",
                                        "256,1024,4096").split(",")]
N = int(os.environ.get("BENCH_CHECKPOINTS", "30"))
RATES = [("~0", "rate0"), ("16", "rate16"), ("128", "rate128")]


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def kvm_works():
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    vm = ct.Qemu("10.0", tmp, mem_mb=64, bios=ct.GUEST_BIOS, accel="kvm")
    try:
        ct.wait_for(lambda: "C=" in vm.serial(), 20, "the guest")
        return vm.qmp.cmd("query-kvm")["enabled"]
    except Exception:
        return False
    finally:
        vm.kill()
        subprocess.run(["rm", "-rf", tmp])


def method_obstacle(method):
    """None if colo-primary can use @method here, else why not (it says
    so itself: one short session against a 64 MiB VM)."""
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    vm = ct.Qemu("10.0", tmp, mem_mb=64, bios=ct.GUEST_BIOS)
    try:
        vm.qmp.close()
        p = subprocess.run([PRIMARY, "--qmp", vm.qmp_path, "--ram-file",
                            vm.ram_path, "--connect", "tcp:127.0.0.1:1",
                            "--qemu-pid", str(vm.proc.pid),
                            "--dirty-tracking", method],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        err = p.stderr.decode()
        m = re.search(r"--dirty-tracking (.*)", err)
        return m.group(1).strip() if m else None
    finally:
        vm.kill()
        subprocess.run(["rm", "-rf", tmp])


def guest_speed(method, seconds=5.0):
    """The unpaced colo-guest's page writes per second (its counter in the
    RAM file), unprotected and then protected by colo-primary with
    @method, in one VM.  Both after a first short session: QEMU under TCG
    runs this guest several times faster once it has been through a
    migration (13 M against 80 M writes/s here), whoever protects it."""
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    vm = ct.Qemu("10.0", tmp, mem_mb=256, bios=ct.GUEST_BIOS)
    secs = []
    agent = None

    def counter():
        with open(vm.ram_path, "rb") as f:
            f.seek(0x500000)
            return int.from_bytes(f.read(4), "little")

    def rate():
        c0, t0 = counter(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = counter(), time.monotonic()
        return ((c1 - c0) & 0xffffffff) / (t1 - t0)

    def secondary():
        sdir = os.path.join(tmp, "sec%d" % len(secs))
        os.makedirs(sdir)
        secs.append(ct.ColoSecondary(sdir))
        return secs[-1]

    def argv(sec):
        return [PRIMARY, "--qmp", vm.qmp_path, "--ram-file", vm.ram_path,
                "--connect", "tcp:127.0.0.1:%d" % sec.port, "-q",
                "--qemu-pid", str(vm.proc.pid), "--x-checkpoint-delay",
                "100"]
    try:
        ct.wait_for(lambda: "colo-guest" in vm.serial(), 60, "the guest")
        vm.qmp.close()
        subprocess.run(argv(secondary()) + ["--checkpoints", "2",
                                            "--dirty-tracking", "digest"],
                       check=True, timeout=300)
        time.sleep(1)
        unprotected = rate()
        sec = secondary()
        agent = subprocess.Popen(argv(sec) + ["--dirty-tracking", method])
        ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")[
            "x-checkpoints"] >= 3, 120, "checkpoints")
        return unprotected, rate()
    finally:
        if agent:
            agent.kill()
            agent.wait()
        vm.kill()
        for sec in secs:
            sec.quit()
        subprocess.run(["rm", "-rf", tmp])


def run_agent(mib, guest, accel="tcg", delay=100, n=N, method="auto"):
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    bios = os.path.join(GUESTS, "colo-guest-%s.bios" % guest)
    vm = ct.Qemu("10.0", tmp, mem_mb=mib, bios=bios, accel=accel)
    sdir = os.path.join(tmp, "sec")
    os.makedirs(sdir)
    sec = ct.ColoSecondary(sdir)
    try:
        ct.wait_for(lambda: "colo-guest" in vm.serial(), 60, "the guest")
        vm.qmp.close()
        p = subprocess.run([PRIMARY, "--qmp", vm.qmp_path, "--ram-file",
                            vm.ram_path, "--connect",
                            "tcp:127.0.0.1:%d" % sec.port,
                            "--checkpoints", str(n),
                            "--x-checkpoint-delay", str(delay),
                            "--qemu-pid", str(vm.proc.pid),
                            "--dirty-tracking", method],
                           stdout=subprocess.PIPE, check=True, timeout=900)
        out = p.stdout.decode()
        pauses = [float(x) for x in
                  re.findall(r"checkpoint \d+: pause ([0-9.]+) ms", out)]
        dirty = [int(x) for x in re.findall(r"\), (\d+) dirty", out)]
        wire = [int(x) for x in re.findall(r"xbzrle, (\d+) bytes", out)]
        cps = float(re.search(r"([0-9.]+) checkpoints/s", out).group(1))
        return {"median": statistics.median(pauses),
                "p99": pct(pauses, 0.99), "cps": cps,
                "dirty": statistics.median(dirty) / 256.0,
                "wire": statistics.median(wire) / 1048576.0}
    finally:
        vm.kill()
        sec.quit()
        subprocess.run(["rm", "-rf", tmp])


def run_qemu_colo(mib, guest, version="7.2", delay=100, n=N):
    """Stock QEMU's own COLO primary into colo-secondary; the pause is
    the primary's STOP -> RESUME (QEMU stamps its events)."""
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    bios = os.path.join(GUESTS, "colo-guest-%s.bios" % guest)
    vm = ct.Qemu(version, tmp, mem_mb=mib, bios=bios, accel="kvm")
    sdir = os.path.join(tmp, "sec")
    os.makedirs(sdir)
    sec = ct.ColoSecondary(sdir)
    try:
        ct.wait_for(lambda: "colo-guest" in vm.serial(), 60, "the guest")
        q = vm.qmp
        q.set_caps(**{"x-colo": True, "events": True})
        q.cmd("migrate-set-parameters", **{"x-checkpoint-delay": delay})
        q.cmd("migrate", uri="tcp:127.0.0.1:%d" % sec.port)
        ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")[
            "x-checkpoints"] >= 1, 120, "COLO")
        q.poll_events(0.1)
        q.events.clear()
        start = sec.qmp.cmd("query-colo-status")["x-checkpoints"]
        t0 = time.monotonic()
        dirty = []
        while True:
            st = sec.qmp.cmd("query-colo-status")
            dirty.append(st["x-last-ram-pages"])
            if st["x-checkpoints"] >= start + n:
                break
            if time.monotonic() - t0 > 180:
                raise TimeoutError("QEMU %s COLO stalled" % version)
            q.poll_events(0.05)
        cps = (st["x-checkpoints"] - start) / (time.monotonic() - t0)
        pauses, stop = [], None
        for ev in q.events:
            ts = ev["timestamp"]["seconds"] + \
                ev["timestamp"]["microseconds"] / 1e6
            if ev["event"] == "STOP":
                stop = ts
            elif ev["event"] == "RESUME" and stop is not None:
                pauses.append((ts - stop) * 1000.0)
                stop = None
        return {"median": statistics.median(pauses),
                "p99": pct(pauses, 0.99), "cps": cps,
                "dirty": statistics.median(dirty) / 256.0, "wire": None}
    finally:
        vm.kill()
        sec.quit()
        subprocess.run(["rm", "-rf", tmp])


def main():
    os.makedirs(OUT, exist_ok=True)
    kvm = kvm_works()
    methods, refused = [], []
    for m in ("digest", "uffd-wp", "soft-dirty"):
        why = method_obstacle(m)
        if why:
            refused.append("%s: %s" % (m, why))
        else:
            methods.append(m)
    setups = [("colo-primary %s, TCG" % m, run_agent, {"method": m})
              for m in methods]
    if kvm:
        setups += [("colo-primary %s, KVM" % m, run_agent,
                    {"accel": "kvm", "method": m}) for m in methods]
        setups += [("QEMU 7.2 own COLO, KVM", run_qemu_colo, {})]
    only = os.environ.get("BENCH_ONLY")     # e.g. "QEMU 7.2": those rows
    if only:
        setups = [s for s in setups if only in s[0]]
    if only == "speed":
        # only the guest's write speed: BENCH_ONLY=speed
        for m in methods:
            runs = [guest_speed(m) for _ in range(3)]
            print("  %-12s unprotected %12.0f  protected %12.0f  (%.2fx; "
                  "runs %s)" % (m, statistics.median(u for u, _ in runs),
                                statistics.median(p for _, p in runs),
                                statistics.median(p / u for u, p in runs),
                                ", ".join("%.2f" % (p / u) for u, p in runs)),
                  flush=True)
        return
    lines = ["colo-primary checkpoints, x-checkpoint-delay 100 ms, %d "
             "checkpoints per run" % N,
             "kernel %s; methods here: %s%s; KVM: %s" % (
                 os.uname().release, ", ".join(methods),
                 "".join("\n  not here: " + r for r in refused),
                 "works" if kvm else "not usable"),
             "%-34s %6s %8s %11s %9s %7s %10s %9s" % (
                 "setup", "MiB", "MiB/s", "dirty MiB", "median", "p99",
                 "ckpt/s", "wire MiB")]
    rows = []

    def add(name, mib, rate, r):
        rows.append((name, mib, rate, r))
        lines.append("%-34s %6d %8s %11.2f %6.1f ms %4.1f ms %10.2f %9s" % (
            name, mib, rate, r["dirty"], r["median"], r["p99"], r["cps"],
            "-" if r["wire"] is None else "%.2f" % r["wire"]))
        print(lines[-1], flush=True)

    print("\n".join(lines), flush=True)
    for name, fn, kw in setups:
        for mib in SIZES:
            for rate, guest in RATES:
                try:
                    add(name, mib, rate, fn(mib, guest, **kw))
                except Exception as e:  # a setup that does not run here
                    lines.append("%-34s %6d %8s  failed: %s" % (
                        name, mib, rate, e))
                    print(lines[-1], flush=True)
    if only:
        plot(rows)
        return
    lines.append("")
    lines.append("target case: 256 MiB, colo-guest rewriting 16 MiB as fast "
                 "as TCG runs (all 16 MiB dirty at every checkpoint)")
    for m in methods:
        add("%s, TCG, 16 MiB" % m, 256, "max",
            run_agent(256, "16m", method=m))
    lines.append("")
    lines.append("most checkpoints per second (x-checkpoint-delay 0, "
                 "16 MiB/s guest)")
    for m in methods:
        for mib in SIZES:
            add("%s, TCG, delay 0" % m, mib, "16",
                run_agent(mib, "rate16", delay=0, method=m))
    lines.append("")
    lines.append("the guest's own write speed (unpaced colo-guest, 256 MiB, "
                 "TCG; page writes per second over 5 s, unprotected then "
                 "protected in the same VM, median of 3 VMs)")
    for m in methods:
        runs = [guest_speed(m) for _ in range(3)]
        ratio = statistics.median(p / u for u, p in runs)
        lines.append("  %-12s unprotected %12.0f  protected %12.0f  "
                     "(%.2fx)" % (m, statistics.median(u for u, _ in runs),
                                  statistics.median(p for _, p in runs),
                                  ratio))
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    with open(os.path.join(OUT, "colo-primary.txt"), "w") as f:
        f.write(text + "\n")
    print("\nwritten to bench/out/colo-primary.txt")
    plot(rows)
    plot_ram(rows)


def plot(rows):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("python3-matplotlib missing: no plot")
        return
    fig, axes = plt.subplots(1, len(SIZES), figsize=(6 * len(SIZES), 4.5),
                             squeeze=False)
    rates = ["~0", "16", "128"]
    main = [r for r in rows if r[2] in rates and "delay 0" not in r[0]]
    for ax, mib in zip(axes[0], SIZES):
        names = sorted({r[0] for r in main if r[1] == mib})
        for i, name in enumerate(names):
            pts = {r[2]: r[3] for r in main if r[0] == name and r[1] == mib}
            xs = [j + (i - 1) * 0.27 for j, rt in enumerate(rates)
                  if rt in pts]
            med = [pts[rt]["median"] for rt in rates if rt in pts]
            up = [pts[rt]["p99"] - pts[rt]["median"] for rt in rates
                  if rt in pts]
            ax.bar(xs, med, width=0.27, label=name,
                   yerr=[[0] * len(med), up])
        ax.set_xticks(range(3))
        ax.set_xticklabels(["~0 MiB/s", "16 MiB/s", "128 MiB/s"])
        ax.set_title("%d MiB guest" % mib)
        ax.set_ylabel("VM pause per checkpoint, ms (median, bar to p99)")
        ax.axhline(25, color="grey", linestyle=":", linewidth=1)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "colo-primary.png"), dpi=100)
    print("plot: bench/out/colo-primary.png")


def plot_ram(rows):
    """Pause against RAM size, one line per method, one panel per rate."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rates = ["~0", "16", "128"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), squeeze=False)
    for ax, rate in zip(axes[0], rates):
        sel = [r for r in rows if r[2] == rate and "delay 0" not in r[0]]
        for name in sorted({r[0] for r in sel}):
            pts = sorted((r[1], r[3]["median"]) for r in sel
                         if r[0] == name)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("guest RAM, MiB")
        ax.set_ylabel("VM pause per checkpoint, ms (median)")
        ax.set_title("guest writing %s MiB/s" % rate)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "colo-primary-ram.png"), dpi=100)
    print("plot: bench/out/colo-primary-ram.png")


def plot_from_text(path):
    """Redraws the plot from a colo-primary.txt of an earlier run."""
    rows = []
    pat = re.compile(r"^(.{34}) +(\d+) +(\S+) +([0-9.]+) +([0-9.]+) ms "
                     r"+([0-9.]+) ms")
    with open(path) as f:
        for line in f:
            m = pat.match(line)
            if m:
                rows.append((m.group(1).strip(), int(m.group(2)),
                             m.group(3), {"median": float(m.group(5)),
                                          "p99": float(m.group(6))}))
    plot(rows)
    plot_ram(rows)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--plot":
        plot_from_text(sys.argv[2])
    else:
        main()
