#!/usr/bin/env python3
"""Benchmark (not a test): what replicating the disk per checkpoint costs.

1. Guest I/O: the real Linux guest (256 MiB RAM, TCG, 256 MiB virtio-blk
   disk) runs tests/guest/linux/diskcheck --bench: rounds of 5 s of 4 KiB
   random writes and 5 s of 1 MiB sequential writes, both O_DIRECT|O_SYNC
   (fio's "sync" engine, queue depth 1).  Unprotected, then protected
   with the disk (colo-primary --disk, write-blocking mirror into
   colo-secondary's NBD export) at x-checkpoint-delay 100 and 50 ms.  Only
   rounds that began after protection started are counted.
2. Commit time vs dirty disk bytes: colo-secondary alone, the real QEMU
   7.2 capture replayed, qemu-io writing N bytes into the export in each
   epoch; the disk part of each commit (x-last-disk-us) and the whole
   commit (x-last-flush-us).
3. Initial synchronisation: colo-primary mirrors a disk of 64 MiB to
   1 GiB, full of data or empty (sparse), into a fresh standby image.

Writes bench/out/disk.txt and disk.png."""

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import colodecode  # noqa: E402
import colotest as ct  # noqa: E402

OUT = os.path.join(HERE, "out")
ROUNDS = int(os.environ.get("BENCH_DISK_ROUNDS", "2"))
DIRTY = [64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]
SYNC_SIZES = [64, 256, 1024]


def parse_round(line):
    f = dict(kv.split("=") for kv in line.split()[3:] if "=" in kv)
    return {k: float(v) for k, v in f.items()}


def guest_io(name, agent_args):
    tmp = tempfile.mkdtemp(prefix="colo-bench-disk-", dir="/dev/shm")
    ns = ct.NetNs("bdisk")
    g = None
    try:
        g = ct.ProtectedLinuxGuest(tmp, ns, disk_mb=256, run="diskbench",
                                   failover_net=False,
                                   protect=agent_args is not None,
                                   agent_args=agent_args or ())
        mark = len(g.vm.serial())
        want = ROUNDS + 1

        def rounds():
            return [ln for ln in ct.complete_lines(g.vm.serial()[mark:])
                    if ln.startswith("BENCH round")]

        ct.wait_for(lambda: len(rounds()) >= want, 60 + 15 * want,
                    "benchmark rounds")
        got = [parse_round(ln) for ln in rounds()[1:want]]
        fig = {k: statistics.median(r[k] for r in got) for k in got[0]}
        if agent_args is not None:
            info = g.agent_query()
            fig["pause_median_ms"] = info.get("x-colo-pause-median-us",
                                              0) / 1000
            fig["checkpoints"] = info.get("x-colo-checkpoints")
        return fig
    finally:
        if g:
            g.close()
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def commit_vs_dirty(dirty):
    tmp = tempfile.mkdtemp(prefix="colo-bench-commit-", dir="/dev/shm")
    size = 256 << 20
    image = os.path.join(tmp, "disk.img")
    with open(image, "wb") as f:
        f.truncate(size)
    sec = ct.DiskSecondary(tmp, image)
    uri = sec.uri
    rng = random.Random(dirty)
    chunk = min(dirty, 64 << 10)
    disk_us, flush_us = [], []
    with open(os.path.join(ct.DATA, "colo72kvm.p2s.bin"), "rb") as f:
        session = colodecode.Session(f.read())

    def on_commit(k):
        if k:
            st = sec.qmp.cmd("query-colo-status")
            disk_us.append(st["x-last-disk-us"])
            flush_us.append(st["x-last-flush-us"])
        offs = rng.sample(range(size // chunk), dirty // chunk)
        cmds = []
        for o in offs:
            cmds += ["-c", "write -P %d %d %d" % (rng.randrange(1, 255),
                                                 o * chunk, chunk)]
        subprocess.run(["qemu-io", "-f", "raw", uri] + cmds, check=True,
                       capture_output=True)

    try:
        sock = sec.connect()
        ct.replay(sock, session, on_commit=on_commit)
        sock.close()
    finally:
        sec.quit()
        shutil.rmtree(tmp, ignore_errors=True)
    return statistics.median(disk_us) / 1000, \
        statistics.median(flush_us) / 1000


def initial_sync(mb, full):
    tmp = tempfile.mkdtemp(prefix="colo-bench-sync-", dir="/dev/shm")
    disk = os.path.join(tmp, "disk.img")
    standby = os.path.join(tmp, "standby.img")
    with open(disk, "wb") as f:
        if full:
            for _ in range(mb):
                f.write(os.urandom(1 << 20))
        else:
            f.truncate(mb << 20)
    with open(standby, "wb") as f:
        f.truncate(mb << 20)
    vm = ct.Qemu("10.0", tmp, mem_mb=64, bios=ct.HALT_BIOS, extra=[
        "-blockdev", "driver=raw,node-name=disk0,file.driver=file,"
        "file.filename=" + disk, "-device", "virtio-blk-pci,drive=disk0"])
    sdir = os.path.join(tmp, "sec")
    os.makedirs(sdir)
    sec = ct.DiskSecondary(sdir, standby)
    try:
        vm.qmp.close()
        r = subprocess.run([ct.PRIMARY_AGENT, "--qmp", vm.qmp_path,
                            "--ram-file", vm.ram_path, "--connect",
                            "tcp:127.0.0.1:%d" % sec.port, "--disk",
                            "disk0=" + sec.uri,
                            "--checkpoints", "1", "--no-net-buffer"],
                           capture_output=True, text=True, timeout=900)
        line = [ln for ln in r.stdout.splitlines()
                if ln.startswith("disk disk0: mirrored")]
        if r.returncode or not line:
            raise RuntimeError(r.stdout + r.stderr)
        secs = float(line[0].split(" MiB in ")[1].split(" s ")[0])
        return secs
    finally:
        sec.quit()
        vm.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = []

    def say(s):
        print(s, flush=True)
        lines.append(s)

    say("== guest I/O (diskcheck --bench, O_DIRECT|O_SYNC, QD1, medians "
        "of %d rounds)" % ROUNDS)
    io = []
    for name, args in (("unprotected", None),
                       ("protected, 100 ms", ["--x-checkpoint-delay",
                                              "100"]),
                       ("protected, 50 ms", ["--x-checkpoint-delay", "50"])):
        f = guest_io(name, args)
        io.append((name, f))
        say("%-18s 4k rand %7.1f IOPS, p50 %6.0f us, p99 %6.0f us; "
            "1M seq %6.2f MiB/s%s" % (
                name, f["iops"], f["p50_us"], f["p99_us"], f["mbps"],
                "; pause median %.1f ms" % f["pause_median_ms"]
                if "pause_median_ms" in f else ""))

    say("== commit time vs dirty disk bytes (colo-secondary, 256 MiB image)")
    commit = []
    for d in DIRTY:
        disk_ms, flush_ms = commit_vs_dirty(d)
        commit.append((d, disk_ms, flush_ms))
        say("%8.2f MiB dirty: disk part %7.2f ms (%7.1f MiB/s), whole "
            "commit %7.2f ms" % (d / 1048576, disk_ms,
                                 d / 1048576 / max(disk_ms / 1000, 1e-6),
                                 flush_ms))

    say("== initial synchronisation (blockdev-mirror into the standby)")
    sync = []
    for mb in SYNC_SIZES:
        for full in (True, False):
            t0 = time.time()
            secs = initial_sync(mb, full)
            sync.append((mb, full, secs))
            say("%5d MiB %-6s %6.2f s (%7.1f MiB/s), %.0f s in all" % (
                mb, "data" if full else "sparse", secs,
                mb / max(secs, 1e-6), time.time() - t0))

    with open(os.path.join(OUT, "disk.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no matplotlib: no plot)")
        return
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.5))
    names = [n for n, _ in io]
    ax[0].bar(names, [f["iops"] for _, f in io], color="tab:blue")
    ax[0].set_ylabel("4 KiB random sync writes, IOPS")
    ax0b = ax[0].twinx()
    ax0b.plot(names, [f["mbps"] for _, f in io], "o-", color="tab:red")
    ax0b.set_ylabel("1 MiB sequential sync writes, MiB/s", color="tab:red")
    ax[0].set_title("guest I/O (TCG, QD1)")
    ax[1].plot([d / 1048576 for d, _, _ in commit],
               [m for _, m, _ in commit], "o-", label="disk part")
    ax[1].plot([d / 1048576 for d, _, _ in commit],
               [m for _, _, m in commit], "s--", label="whole commit")
    ax[1].set_xscale("log")
    ax[1].set_yscale("log")
    ax[1].set_xlabel("dirty disk bytes per checkpoint, MiB")
    ax[1].set_ylabel("ms")
    ax[1].legend()
    ax[1].set_title("commit time vs dirty disk")
    for full in (True, False):
        pts = [(mb, s) for mb, f_, s in sync if f_ == full]
        ax[2].plot([p[0] for p in pts], [p[1] for p in pts], "o-",
                   label="data" if full else "sparse")
    ax[2].set_xlabel("disk size, MiB")
    ax[2].set_ylabel("initial mirror, s")
    ax[2].legend()
    ax[2].set_title("initial synchronisation")
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "disk.png"), dpi=100)
    print("plot: bench/out/disk.png")


if __name__ == "__main__":
    main()
