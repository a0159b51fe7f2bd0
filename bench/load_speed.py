#!/usr/bin/env python3
"""Benchmark (not a test): load a 1 GiB stream saved by stock QEMU 10.0 (a
guest whose RAM is mostly non-zero pages) from a file into colo-secondary
and into stock QEMU 10.0 (-incoming file:), and compare with page-by-page
memcpy measured in the same run.  Prints GB/s and ratios, writes
bench/out/load-speed.{txt,png}."""

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import colotest as ct  # noqa: E402

OUT = os.path.join(HERE, "out")
MEM_MB = int(os.environ.get("BENCH_MEM_MB", "1024"))
NPAGES = (MEM_MB - 2) * 256 - 512          # leave room for the counter page
REPS = int(os.environ.get("BENCH_REPS", "3"))
STREAM = "/dev/shm/colo-bench-%dm.mig" % MEM_MB


def build_bios():
    bios = os.path.join(OUT, "fill-%d.bios" % NPAGES)
    if not os.path.exists(bios):
        subprocess.run(["nasm", "-f", "bin", "-DNPAGES=%d" % NPAGES, "-o",
                        bios, os.path.join(HERE, "..", "tests", "guest",
                                           "colo-guest.asm")], check=True)
    return bios


def make_stream(bios, tmp):
    if os.path.exists(STREAM):
        return
    q = ct.Qemu("10.0", tmp, machine="pc", mem_mb=MEM_MB, bios=bios)
    try:
        def covered():
            lines = [l for l in q.serial().split() if l.startswith("C=")]
            return lines and int(lines[-1][2:], 16) > NPAGES
        ct.wait_for(covered, 300, "the guest to fill its RAM", 0.2)
        q.qmp.cmd("stop")
        q.qmp.cmd("migrate", uri="exec:cat > %s.tmp" % STREAM)
        ct.wait_for(lambda: q.qmp.cmd("query-migrate")["status"] ==
                    "completed", 300, "the stream", 0.1)
        os.rename(STREAM + ".tmp", STREAM)
    finally:
        q.quit()


def time_ours(tmp):
    ram = os.path.join(tmp, "ours")
    subprocess.run(["rm", "-rf", ram])
    t = time.monotonic()
    rc, err = ct.run_once(STREAM, ram)
    dt = time.monotonic() - t
    if rc != 0:
        raise RuntimeError(err)
    subprocess.run(["rm", "-rf", ram])
    return dt


def time_qemu(bios, tmp):
    argv, env = ct.qemu_command("10.0")
    qmp_path = os.path.join(tmp, "ref.qmp")
    p = subprocess.Popen(argv + ["-M", "pc", "-m", str(MEM_MB), "-bios", bios,
                                 "-display", "none", "-nodefaults", "-S",
                                 "-serial", "null", "-accel", "tcg",
                                 "-qmp", "unix:%s,server=on,wait=off" % qmp_path,
                                 "-incoming", "defer"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        qmp = ct.QMP(qmp_path)
        qmp.set_caps(events=True)
        t = time.monotonic()
        qmp.cmd("migrate-incoming", uri="file:" + STREAM)
        qmp.wait_event("MIGRATION", 300,
                       lambda e: e["data"]["status"] in ("completed", "failed"))
        dt = time.monotonic() - t
        if qmp.cmd("query-migrate")["status"] != "completed":
            raise RuntimeError("QEMU failed to load the stream")
        qmp.cmd("quit")
        return dt
    finally:
        p.kill()
        p.wait()


def memcpy_figures():
    exe = os.path.join(ct.BUILD_ROOT, "bench", "ram-write")
    out = subprocess.run([exe, str(MEM_MB)], check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    figs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "GB/s":
            figs[parts[0]] = float(parts[1])
    return figs, out


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = "/dev/shm/colo-bench-work"
    os.makedirs(tmp, exist_ok=True)
    bios = build_bios()
    make_stream(bios, tmp)
    size = os.path.getsize(STREAM)
    time_ours(tmp)                      # warm-up: page cache, tmpfs
    ours = [time_ours(tmp) for _ in range(REPS)]
    time_qemu(bios, tmp)
    qemu = [time_qemu(bios, tmp) for _ in range(REPS)]
    figs, raw = memcpy_figures()
    g_ours = size / statistics.median(ours) / 1e9
    g_qemu = size / statistics.median(qemu) / 1e9
    lines = [
        "stream: %s, %.1f MiB (QEMU 10.0.2, -m %d, guest-filled pages)"
        % (STREAM, size / 2**20, MEM_MB),
        "colo-secondary --once file:  %.3f GB/s  (median of %d: %s s)"
        % (g_ours, REPS, ", ".join("%.3f" % x for x in ours)),
        "QEMU 10.0.2 -incoming file:  %.3f GB/s  (median of %d: %s s)"
        % (g_qemu, REPS, ", ".join("%.3f" % x for x in qemu)),
        "ratio colo-secondary / QEMU: %.2fx (best runs: %.3f vs %.3f GB/s)"
        % (g_ours / g_qemu, size / min(ours) / 1e9, size / min(qemu) / 1e9),
    ]
    for k in ("memcpy-prefaulted", "memcpy-fresh-anon", "memcpy-fresh-shm"):
        if k in figs:
            lines.append("page-by-page %-18s %.3f GB/s -> colo-secondary "
                         "is %.2fx of it" % (k, figs[k], g_ours / figs[k]))
    text = "\n".join(lines)
    print(text)
    print(raw)
    with open(os.path.join(OUT, "load-speed.txt"), "w") as f:
        f.write(text + "\n\n" + raw)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        names = ["colo-secondary", "QEMU 10.0.2"] + \
            [k for k in ("memcpy-fresh-shm", "memcpy-fresh-anon",
                         "memcpy-prefaulted") if k in figs]
        vals = [g_ours, g_qemu] + [figs[k] for k in names[2:]]
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.barh(names, vals, color=["#2a7", "#888"] + ["#ccc"] * 3)
        ax.set_xlabel("GB/s (higher is better)")
        ax.set_title("Loading a %d MiB stream from a file" % MEM_MB)
        for i, v in enumerate(vals):
            ax.text(v, i, " %.2f" % v, va="center")
        fig.tight_layout()
        fig.savefig(os.path.join(OUT, "load-speed.png"), dpi=100)
        print("plot:", os.path.join(OUT, "load-speed.png"))
    except ImportError:
        print("(python3-matplotlib missing: no plot)")


if __name__ == "__main__":
    main()
