#!/usr/bin/env python3
"""Benchmark (not a test): what protecting a libvirt domain costs.

1. The pause of a checkpoint (colo-guest, TCG, 100 ms timer, 60
   checkpoints, median and p99, and the median of its stop, device-state
   and cont parts) for the same guest three ways: a QEMU of our own
   (colo-primary --qmp), a libvirt domain reached through libvirt's QEMU
   monitor pass-through, and the same domain with a second QMP monitor in
   its XML (<qemu:commandline>).
2. Failover time, from x-colo-lost-heartbeat to the guest running (the
   X_COLO_FAILOVER event) and to its first serial line: a QEMU of our own
   into a stock QEMU started by colo-secondary (RAM files used in place,
   today's direct path), and a libvirt domain into a libvirt domain on the
   standby, restored from a save image colo-secondary streams (all RAM
   copied), for 64 and 256 MiB guests.

Writes bench/out/libvirt.txt and bench/out/libvirt.png (Debian's python3
for matplotlib)."""

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
from colotest.libvirt import Libvirtd, colo_guest_xml  # noqa: E402

OUT = os.path.join(HERE, "out")
NAME = "colo-bench"
UUID = "5b3c9a1e-0f4d-4c2b-8e7a-9d6f1c2b3a4e"
CHECKPOINTS = int(os.environ.get("BENCH_CHECKPOINTS", "60"))
SIZES = [int(x) for x in os.environ.get("BENCH_GUEST_MIB",
                                        "64,256").split(",")]
REPS = int(os.environ.get("BENCH_REPS", "3"))

LINE = re.compile(r"pause ([\d.]+) ms \(stop ([-\d.]+), devices ([\d.]+), "
                  r"scan \+[\d.]+, cont ([\d.]+)\)")


def pauses(out):
    rows = [tuple(float(x) for x in m.groups()) for m in LINE.finditer(out)]
    if not rows:
        raise RuntimeError("no checkpoint lines in:\n" + out[-2000:])
    return rows


def summary(rows):
    total = sorted(r[0] for r in rows)
    return {"median": statistics.median(total),
            "p99": total[min(len(total) - 1, int(len(total) * 0.99))],
            "stop": statistics.median(r[1] for r in rows),
            "devices": statistics.median(r[2] for r in rows),
            "cont": statistics.median(r[3] for r in rows)}


def run_primary(args, sec):
    p = subprocess.run([ct.PRIMARY_AGENT] + args +
                       ["--connect", "tcp:127.0.0.1:%d" % sec.port,
                        "--checkpoints", str(CHECKPOINTS)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=600)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.decode())
    return summary(pauses(p.stdout.decode()))


def pause_costs(tmp):
    res = {}
    # a QEMU of our own
    vm = ct.Qemu("10.0", tmp, machine="pc", mem_mb=64, bios=ct.GUEST_BIOS)
    try:
        ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
        vm.qmp.close()
        sec = secondary(tmp, "sec-own")
        res["own QEMU (--qmp)"] = run_primary(
            ["--qmp", vm.qmp_path, "--ram-file", vm.ram_path], sec)
        sec.quit()
    finally:
        vm.kill()
    lv = Libvirtd(tmp, "bench")
    try:
        for way, monitor in (("libvirt pass-through", None),
                             ("libvirt, second monitor", "/run/bench.qmp")):
            xml = os.path.join(tmp, "dom.xml")
            serial = os.path.join(tmp, "serial-%d.log" % len(res))
            with open(xml, "w") as f:
                f.write(colo_guest_xml(NAME, UUID, serial, monitor=monitor))
            lv.virsh("create", xml)
            ct.wait_for(lambda: ct.guest_counters(serial), 60, "the guest")
            sec = secondary(tmp, "sec-%d" % len(res))
            res[way] = run_primary(["--libvirt-domain", NAME,
                                    "--libvirt-uri", lv.uri], sec)
            sec.quit()
            lv.virsh("destroy", NAME)
    finally:
        lv.stop()
    return res


def secondary(tmp, tag, *extra):
    d = os.path.join(tmp, tag)
    os.makedirs(d)
    return ct.ColoSecondary(d, extra=list(extra))


def failover_once(tmp, mib, into_libvirt, rep):
    """(s to the failover event, s inside colo-secondary, s to the first
    serial line): a libvirt domain into the standby's libvirt, or (the
    direct path) a QEMU of our own into a stock QEMU colo-secondary
    starts."""
    d = os.path.join(tmp, "fo-%d-%s-%d" % (mib, into_libvirt, rep))
    os.makedirs(d)
    serial = os.path.join(d, "resumed.log")
    pri = Libvirtd(d, "primary") if into_libvirt else None
    sby = Libvirtd(d, "standby") if into_libvirt else None
    vm = None
    sec = None
    agent = None
    pid = None
    try:
        if into_libvirt:
            xml = os.path.join(d, "primary.xml")
            pserial = os.path.join(d, "primary.log")
            with open(xml, "w") as f:
                f.write(colo_guest_xml(NAME, UUID, pserial, mem_mb=mib,
                                       monitor="/run/bench.qmp"))
            pri.virsh("create", xml)
            ct.wait_for(lambda: ct.guest_counters(pserial), 60, "the guest")
            sxml = os.path.join(d, "standby.xml")
            with open(sxml, "w") as f:
                f.write(colo_guest_xml(NAME, UUID, serial, mem_mb=mib,
                                       monitor="/run/bench.qmp"))
            sec = secondary(d, "sec", "-failover-libvirt-xml", sxml,
                            "-failover-libvirt-uri", sby.uri)
            how = ["--libvirt-domain", NAME, "--libvirt-uri", pri.uri]
        else:
            vm = ct.Qemu("10.0", d, machine="pc", mem_mb=mib,
                         bios=ct.GUEST_BIOS)
            ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
            vm.qmp.close()
            sec = secondary(d, "sec", "-failover-args",
                            "-nodefaults -display none -accel tcg -bios %s "
                            "-serial file:%s" % (ct.GUEST_BIOS, serial))
            how = ["--qmp", vm.qmp_path, "--ram-file", vm.ram_path]
        agent = subprocess.Popen(
            [ct.PRIMARY_AGENT] + how +
            ["--connect", "tcp:127.0.0.1:%d" % sec.port, "-q"])
        ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")[
            "x-checkpoints"] >= 3, 120, "checkpoints")
        if into_libvirt:
            os.kill(pri.qemu_pid(NAME), 9)
        else:
            vm.proc.kill()
        sec.qmp.wait_event("COLO_EXIT", 30)
        t0 = time.monotonic()
        sec.qmp.cmd("x-colo-lost-heartbeat")
        ev = sec.qmp.wait_event("X_COLO_FAILOVER", 120)
        t_run = time.monotonic() - t0
        if "error" in ev["data"]:
            raise RuntimeError(ev["data"]["error"])
        pid = ev["data"].get("pid")
        ct.wait_for(lambda: ct.guest_counters(serial), 60, "output", 0.002)
        t_out = time.monotonic() - t0
        return t_run, ev["data"]["resume-us"] / 1e6, t_out
    finally:
        if agent:
            agent.kill()
            agent.wait()
        if pid:
            ct.kill_pid(pid)
        if vm:
            vm.kill()
        if sec:
            sec.quit()
        for lv in (pri, sby):
            if lv:
                lv.stop()


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    lines = []
    try:
        costs = pause_costs(tmp)
        lines.append("pause of a checkpoint, colo-guest 64 MiB, TCG, %d "
                     "checkpoints (ms)" % CHECKPOINTS)
        lines.append("  %-26s %7s %7s %7s %8s %7s" % (
            "how QEMU is reached", "median", "p99", "stop", "devices",
            "cont"))
        for way, s in costs.items():
            lines.append("  %-26s %7.2f %7.2f %7.2f %8.2f %7.2f" % (
                way, s["median"], s["p99"], s["stop"], s["devices"],
                s["cont"]))
            print(lines[-1], flush=True)
        lines.append("")
        lines.append("failover: x-colo-lost-heartbeat -> guest running "
                     "(median of %d, ms)" % REPS)
        lines.append("  %9s  %-22s %10s %12s %14s" % (
            "guest MiB", "into", "to event", "in secondary",
            "first output"))
        fo = {}
        for mib in SIZES:
            for into in (False, True):
                r = [failover_once(tmp, mib, into, i) for i in range(REPS)]
                fo[(mib, into)] = [statistics.median(x[k] for x in r) * 1000
                                   for k in range(3)]
                lines.append("  %9d  %-22s %10.0f %12.0f %14.0f" % (
                    (mib, "libvirt (save image)" if into else
                     "own QEMU (RAM in place)") + tuple(fo[(mib, into)])))
                print(lines[-1], flush=True)
    finally:
        subprocess.run(["rm", "-rf", tmp])
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(OUT, "libvirt.txt"), "w") as f:
        f.write(text + "\n")
    plot(costs, fo)


def plot(costs, fo):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib: no plot (run with /usr/bin/python3)")
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    ways = list(costs)
    bottom = [0] * len(ways)
    for part in ("stop", "devices", "cont"):
        vals = [max(costs[w][part], 0) for w in ways]
        a.bar(ways, vals, bottom=bottom, label=part)
        bottom = [x + y for x, y in zip(bottom, vals)]
    a.plot(ways, [costs[w]["median"] for w in ways], "k_", markersize=30,
           label="pause median")
    a.set_ylabel("ms")
    a.set_title("pause of a checkpoint (colo-guest 64 MiB, TCG)")
    a.legend()
    a.tick_params(axis="x", labelsize=8)
    labels = ["%d MiB\n%s" % (m, "libvirt" if i else "own QEMU")
              for (m, i) in fo]
    b.bar(labels, [v[0] for v in fo.values()], label="to running")
    b.plot(labels, [v[2] for v in fo.values()], "ro",
           label="to first output")
    b.set_ylabel("ms")
    b.set_title("failover time")
    b.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "libvirt.png"), dpi=100)


if __name__ == "__main__":
    main()
