#!/usr/bin/env python3
"""Benchmark (not a test) for the COLO secondary.

1. Checkpoint commit time (VMSTATE_RECEIVED -> VMSTATE_LOADED, measured by
   colo-secondary, query-colo-status x-last-commit-us: journal, copy,
   record) against the size of the checkpoint's dirty set, 1 MiB ... 256
   MiB of random distinct pages, next to page-by-page memcpy of as many
   random distinct pages into a RAM file of the same size, a new set each
   round, measured in the same run (bench/ram-write --scatter).
2. Memory: colo-secondary's RSS (and its RAM files) against guest RAM
   size, 256 MiB ... 2 GiB, next to the stock QEMU 10.0.2 COLO secondary
   under the same primary (colo-test-primary), 10 checkpoints of 16 MiB.
Writes bench/out/colo-commit.{txt,png}."""

import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import colotest as ct  # noqa: E402

OUT = os.path.join(HERE, "out")
SIZES_MIB = [int(x) for x in os.environ.get(
    "BENCH_DIRTY_MIB", "1,4,16,64,256").split(",")]
GUEST_MIB = [int(x) for x in os.environ.get(
    "BENCH_GUEST_MIB", "256,512,1024,2048").split(",")]


def rss(pid):
    vals = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssShmem", "RssFile"):
                vals[k] = int(v.split()[0]) * 1024
    return vals


def du(path):
    real = subprocess.run(["du", "-sB1", path], stdout=subprocess.PIPE)
    return int(real.stdout.split()[0])


def memcpy_gbs():
    exe = os.path.join(ct.BUILD_ROOT, "bench", "ram-write")
    out = subprocess.run([exe, "512"], stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    figs = {}
    for line in out.splitlines():
        p = line.split()
        if len(p) >= 3 and p[2] == "GB/s":
            figs[p[0]] = float(p[1])
    return figs


def scatter_ms(ram_mib, dirty_mib):
    exe = os.path.join(ct.BUILD_ROOT, "bench", "ram-write")
    out = subprocess.run([exe, "--scatter", str(ram_mib), str(dirty_mib),
                          "7"], stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    return float(out.split(":")[1].split()[0])


def commit_times(tmp):
    """{MiB: ([commit us, ...], [journal us, ...], memcpy ms)} for each
    dirty-set size."""
    guest = max(SIZES_MIB) + 64
    initial = ct.make_colo_initial_stream(tmp, mem_mb=guest)
    results = {}
    for mib in SIZES_MIB:
        d = tempfile.mkdtemp(dir=tmp)
        sec = ct.ColoSecondary(d)
        times, journal = [], []
        try:
            p = subprocess.Popen(
                [ct.TEST_PRIMARY, "--initial", initial, "--connect",
                 "tcp:127.0.0.1:%d" % sec.port, "--checkpoints", "8",
                 "--pages", str(mib * 256), "--exact", "--region",
                 "32:%d" % (guest - 16), "--ram-dir",
                 os.path.join(d, "model")],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for line in p.stdout:
                if line.startswith(b"checkpoint"):
                    st = sec.qmp.cmd("query-colo-status")
                    times.append(st["x-last-commit-us"])
                    journal.append(st["x-last-journal-us"])
            p.wait()
        finally:
            sec.quit()
            subprocess.run(["rm", "-rf", d])
        # the first one warms up
        results[mib] = (times[1:] or times, journal[1:] or journal,
                        scatter_ms(guest, mib))
    return results


def memory(tmp):
    rows = []
    for mib in GUEST_MIB:
        d = tempfile.mkdtemp(dir=tmp)
        initial = ct.make_colo_initial_stream(d, mem_mb=mib)
        qdir = os.path.join(d, "qemu")
        os.makedirs(qdir)
        argv, env = ct.qemu_command("10.0")
        qmp_path = os.path.join(qdir, "q.qmp")
        # the stock secondary with ordinary guest RAM, as deployed
        qemu = subprocess.Popen(argv + [
            "-M", "pc", "-m", str(mib), "-bios", ct.HALT_BIOS,
            "-display", "none", "-nodefaults", "-accel", "tcg",
            "-serial", "file:" + os.path.join(qdir, "serial.log"),
            "-qmp", "unix:%s,server=on,wait=off" % qmp_path,
            "-incoming", "defer"], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        sec = ct.ColoSecondary(d)
        try:
            q = ct.QMP(qmp_path)
            q.set_caps(**{"x-colo": True})
            q.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
            qport = q.cmd("query-migrate")["socket-address"][0]["port"]
            subprocess.run(
                [ct.TEST_PRIMARY, "--initial", initial,
                 "--connect", "tcp:127.0.0.1:%s" % qport,
                 "--connect", "tcp:127.0.0.1:%d" % sec.port,
                 "--checkpoints", "10", "--pages", "4096", "--exact",
                 "--region", "16:%d" % (mib - 16), "--xbzrle", "-q",
                 "--ram-dir", os.path.join(d, "model")], check=True,
                timeout=600)
            ours = rss(sec.proc.pid)
            theirs = rss(qemu.pid)
            files = du(sec.ram_dir)
            rows.append((mib, ours, files, theirs))
            q.cmd("quit")
        finally:
            qemu.kill()
            qemu.wait()
            sec.quit()
            subprocess.run(["rm", "-rf", d])
    return rows


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
    lines = []
    try:
        figs = memcpy_gbs()
        ct_res = commit_times(tmp)
        mem = memory(tmp)
    finally:
        subprocess.run(["rm", "-rf", tmp])
    lines.append("commit time (VMSTATE_RECEIVED -> VMSTATE_LOADED), random "
                 "distinct pages; sequential memcpy here %.2f GB/s"
                 % figs["memcpy-prefaulted"])
    commit_rows = []
    for mib, (times, journal, mc) in sorted(ct_res.items()):
        med = statistics.median(times) / 1000.0
        commit_rows.append((mib, med, mc))
        lines.append("  dirty %4d MiB: commit %8.2f ms (median of %d; journal "
                     "%.2f ms)   memcpy of as many random pages %7.2f ms   "
                     "ratio %.2fx" % (mib, med, len(times),
                                      statistics.median(journal) / 1000.0,
                                      mc, med / mc))
    lines.append("memory after 10 checkpoints of 16 MiB (MiB):")
    lines.append("  guest  colo-secondary RSS (anon)  RAM files   "
                 "QEMU 10.0.2 secondary RSS")
    for mib, ours, files, theirs in mem:
        lines.append("  %5d  %8.1f (%8.1f)        %8.1f    %8.1f"
                     % (mib, ours["VmRSS"] / 2**20, ours["RssAnon"] / 2**20,
                        files / 2**20, theirs["VmRSS"] / 2**20))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(OUT, "colo-commit.txt"), "w") as f:
        f.write(text + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
        xs = [r[0] for r in commit_rows]
        a.loglog(xs, [r[1] for r in commit_rows], "o-", label="commit "
                 "(colo-secondary)")
        a.loglog(xs, [r[2] for r in commit_rows], "s--", label="memcpy of "
                 "as many random pages")
        a.set_xlabel("dirty set (MiB)")
        a.set_ylabel("ms")
        a.set_title("Checkpoint commit time")
        a.legend()
        gx = [r[0] for r in mem]
        b.plot(gx, [r[3]["VmRSS"] / 2**20 for r in mem], "s-",
               label="QEMU 10.0.2 secondary RSS")
        b.plot(gx, [(r[1]["RssAnon"] + r[2]) / 2**20 for r in mem], "o-",
               label="colo-secondary anon RSS + RAM files")
        b.plot(gx, [r[1]["RssAnon"] / 2**20 for r in mem], "^-",
               label="colo-secondary anon RSS")
        b.set_xlabel("guest RAM (MiB)")
        b.set_ylabel("MiB")
        b.set_title("Secondary memory, 16 MiB dirty per checkpoint")
        b.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(OUT, "colo-commit.png"), dpi=100)
        print("plot:", os.path.join(OUT, "colo-commit.png"))
    except ImportError:
        print("(python3-matplotlib missing: no plot)")


if __name__ == "__main__":
    main()
