#!/usr/bin/env python3
"""Benchmark (not a test): what TLS costs on the migration channel.

1. Load throughput: stock QEMU 10.0 migrates a stopped VM whose RAM holds
   random bytes (BENCH_TLS_MIB, 512) into colo-secondary, plain and over
   TLS (max-bandwidth unlimited); MB/s as colo-secondary saw it.
2. Checkpoints: colo-primary protects the colo-guest (256 MiB, TCG) into
   colo-secondary every 100 ms, plain and over TLS; the VM's pause and a
   whole checkpoint (stop -> the secondary's VMSTATE_LOADED), median and
   p99 over BENCH_TLS_CHECKPOINTS (60), from X_COLO_CHECKPOINT events.

Writes bench/out/tls.txt and tls.png."""

import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import colotest as ct  # noqa: E402

OUT = os.path.join(HERE, "out")
MIB = int(os.environ.get("BENCH_TLS_MIB", "512"))
CHECKPOINTS = int(os.environ.get("BENCH_TLS_CHECKPOINTS", "60"))


def obj(name, d, server):
    return "tls-creds-x509,id=%s,dir=%s,endpoint=%s,verify-peer=on" % (
        name, d, "server" if server else "client")


def secondary(tmp, certs, tls, colo=False):
    extra = ["-object", obj("tls0", certs["server"], True)] if tls else []
    sec = ct.Secondary(tmp, extra=extra)
    caps = {"events": True}
    if colo:
        caps["x-colo"] = True
    sec.qmp.set_caps(**caps)
    if tls:
        sec.qmp.cmd("migrate-set-parameters", **{"tls-creds": "tls0"})
    sec.qmp.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
    port = int(sec.qmp.cmd("query-migrate")["socket-address"][0]["port"])
    return sec, port


def load(tmp, certs, tls):
    d = tempfile.mkdtemp(dir=tmp)
    sec, port = secondary(d, certs, tls)
    extra = ["-object", obj("tls0", certs["client"], False)] if tls else []
    src = ct.Qemu("10.0", d, mem_mb=MIB, bios=ct.HALT_BIOS, extra=extra)
    try:
        src.qmp.cmd("stop")
        with open(src.ram_path, "r+b") as f:
            for _ in range(MIB):
                f.write(os.urandom(1 << 20))
        params = {"max-bandwidth": 1 << 40}
        if tls:
            params.update({"tls-creds": "tls0", "tls-hostname": "localhost"})
        src.qmp.cmd("migrate-set-parameters", **params)
        src.qmp.cmd("migrate", uri="tcp:127.0.0.1:%d" % port)
        ct.wait_for(lambda: sec.qmp.cmd("query-migrate")["status"] in
                    ("completed", "failed"), 300, "the migration", 0.05)
        info = sec.qmp.cmd("query-migrate")
        assert info["status"] == "completed", info
        return info["ram"]["transferred"] / 1e6 / (info["total-time"] / 1e3)
    finally:
        src.quit()
        sec.quit()
        subprocess.run(["rm", "-rf", d])


def checkpoints(tmp, certs, tls):
    d = tempfile.mkdtemp(dir=tmp)
    sec, port = secondary(d, certs, tls, colo=True)
    vm = ct.Qemu("10.0", d, mem_mb=256, bios=ct.GUEST_BIOS)
    agent = None
    try:
        ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
        vm.qmp.close()
        mon = os.path.join(d, "primary.qmp")
        args = [ct.PRIMARY_AGENT, "--qmp", vm.qmp_path, "--ram-file",
                vm.ram_path, "--monitor", "unix:%s,server=on,wait=off" % mon,
                "-q", "--checkpoints", str(CHECKPOINTS)]
        if tls:
            args += ["--object", obj("tls0", certs["client"], False)]
        agent = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        q = ct.QMP(mon)
        q.set_caps(**{"events": True, "x-colo": True})
        params = {"x-checkpoint-delay": 100}
        if tls:
            # the operator's way: QEMU's parameters on colo-primary's monitor
            params.update({"tls-creds": "tls0", "tls-hostname": "localhost"})
        q.cmd("migrate-set-parameters", **params)
        q.cmd("migrate", uri="tcp:127.0.0.1:%d" % port)
        pauses, totals = [], []
        while len(totals) < CHECKPOINTS:
            ev = q.wait_event("X_COLO_CHECKPOINT", 60)
            pauses.append(ev["data"]["pause-us"] / 1000.0)
            totals.append(ev["data"]["total-us"] / 1000.0)
        q.cmd("quit")
        q.close()
        agent.wait(60)
        return pauses, totals
    finally:
        if agent and agent.poll() is None:
            agent.kill()
            agent.wait()
        vm.kill()
        sec.quit()
        subprocess.run(["rm", "-rf", d])


def p99(xs):
    return sorted(xs)[len(xs) * 99 // 100]


def main():
    ct.require_qemu("10.0")
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="colo-bench-tls-", dir="/dev/shm")
    lines = []
    try:
        certs = ct.make_tls_certs(os.path.join(tmp, "certs"))
        speed = {tls: load(tmp, certs, tls) for tls in (False, True)}
        for tls in (False, True):
            lines.append("load %d MiB of random RAM from QEMU 10.0, %-5s: "
                         "%7.1f MB/s" % (MIB, "TLS" if tls else "plain",
                                         speed[tls]))
            print(lines[-1], flush=True)
        ck = {tls: checkpoints(tmp, certs, tls) for tls in (False, True)}
        for tls in (False, True):
            pauses, totals = ck[tls]
            lines.append("colo-primary, 256 MiB colo-guest, %-5s: pause "
                         "median %.2f ms p99 %.2f; checkpoint median %.2f "
                         "ms p99 %.2f (%d checkpoints)" % (
                             "TLS" if tls else "plain",
                             statistics.median(pauses), p99(pauses),
                             statistics.median(totals), p99(totals),
                             len(totals)))
            print(lines[-1], flush=True)
        lines.append("TLS costs: load throughput x%.2f; checkpoint median "
                     "%+.2f ms" % (speed[True] / speed[False],
                                   statistics.median(ck[True][1]) -
                                   statistics.median(ck[False][1])))
        print(lines[-1])
    finally:
        subprocess.run(["rm", "-rf", tmp])
    with open(os.path.join(OUT, "tls.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("tls: no matplotlib (python3-matplotlib), no plot")
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.bar(["plain", "TLS"], [speed[False], speed[True]])
    a1.set_ylabel("MB/s")
    a1.set_title("load from QEMU 10.0 (%d MiB)" % MIB)
    a2.boxplot([ck[False][1], ck[True][1]], labels=["plain", "TLS"])
    a2.set_ylabel("ms")
    a2.set_title("checkpoint, stop -> LOADED (256 MiB)")
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "tls.png"))
    print("tls: plot", os.path.join(OUT, "tls.png"))


if __name__ == "__main__":
    main()
