#!/usr/bin/env python3
"""make demo: colo-standby end to end on this machine.

1. A running VM (stock QEMU 10.0, a guest that keeps its memory busy) is
   live-migrated into colo-secondary; we show what it loaded and check it
   against the source's RAM.
2. A COLO session: a primary (tools/colo-test-primary) checkpoints a VM
   into colo-secondary and into the stock QEMU 10.0.2 COLO secondary at
   once; the primary is killed with SIGKILL in the middle of a checkpoint;
   after x-colo-lost-heartbeat colo-secondary holds exactly the last
   committed checkpoint, identical to what stock QEMU holds.

DEMO_SHORT=1 runs fewer checkpoints."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import colotest as ct  # noqa: E402

SHORT = os.environ.get("DEMO_SHORT") == "1"


def say(msg):
    print(msg, flush=True)


def part1(tmp):
    say("== 1. live migration of a running VM into colo-secondary")
    sec = ct.Secondary(tmp, name="demo")
    src = None
    try:
        sec.qmp.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
        port = sec.qmp.cmd("query-migrate")["socket-address"][0]["port"]
        src = ct.Qemu("10.0", tmp, machine="pc", mem_mb=64,
                      bios=ct.GUEST_BIOS)
        ct.wait_for(lambda: "C=" in src.serial(), 60, "the guest")
        say("   source: stock QEMU %s, guest running: %s" % (
            src.qmp.greeting["QMP"]["version"]["qemu"],
            src.serial().strip().splitlines()[-1]))
        src.qmp.cmd("migrate", uri="tcp:127.0.0.1:%s" % port)
        ct.wait_for(lambda: sec.qmp.cmd("query-migrate")["status"] in
                    ("completed", "failed"), 60, "the migration")
        info = sec.qmp.cmd("query-migrate")
        ram = info["ram"]
        say("   colo-secondary: %s in %d ms, %d bytes, %d pages (%d zero)"
            % (info["status"], info["total-time"], ram["transferred"],
               ram["x-pages"], ram["duplicate"]))
        for root, _d, files in sorted(os.walk(sec.ram_dir)):
            for n in sorted(files):
                p = os.path.join(root, n)
                say("     %-28s %10d bytes" % (os.path.relpath(p, sec.ram_dir),
                                             os.path.getsize(p)))
        same = ct.sha256_file(src.ram_path) == \
            ct.sha256_file(os.path.join(sec.ram_dir, "pc.ram"))
        say("   pc.ram equals the source's RAM: %s" % same)
        return same and info["status"] == "completed"
    finally:
        if src:
            src.quit()
        sec.quit()


def part2(tmp):
    say("== 2. a COLO session, the primary killed mid-checkpoint, failover")
    initial = ct.make_colo_initial_stream(tmp)
    qdir = os.path.join(tmp, "stock-secondary")
    os.makedirs(qdir)
    qemu = ct.Qemu("10.0", qdir, machine="pc", mem_mb=64, bios=ct.HALT_BIOS,
                   incoming="defer")
    sdir = os.path.join(tmp, "colo")
    os.makedirs(sdir)
    sec = ct.ColoSecondary(sdir)
    prim = None
    try:
        qemu.qmp.set_caps(**{"x-colo": True})
        qemu.qmp.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
        qport = qemu.qmp.cmd("query-migrate")["socket-address"][0]["port"]
        total = 8 if SHORT else 40
        prim = subprocess.Popen(
            [ct.TEST_PRIMARY, "--initial", initial, "--connect",
             "tcp:127.0.0.1:%s" % qport, "--connect",
             "tcp:127.0.0.1:%d" % sec.port, "--checkpoints", str(total),
             "--pages", "2000", "--xbzrle", "--delay-ms", "100",
             "--ram-dir", os.path.join(tmp, "model")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seen = 0
        kill_after = total // 2
        while seen < kill_after:
            line = prim.stdout.readline().decode()
            if not line:
                break
            if line.startswith("checkpoint"):
                seen += 1
                st = sec.qmp.cmd("query-colo-status")
                say("   %s   | colo-secondary: %d committed, commit %.2f ms"
                    % (line.strip(), st["x-checkpoints"],
                       st["x-last-commit-us"] / 1000))
        # Save what the last committed checkpoint looks like, then kill
        # the primary while the next checkpoint is on its way.
        time.sleep(0.12)
        prim.send_signal(signal.SIGKILL)
        prim.wait()
        say("   primary killed with SIGKILL")
        ev = sec.qmp.wait_event("COLO_EXIT", 10)
        say("   event COLO_EXIT %s" % ev["data"])
        n = sec.qmp.cmd("query-colo-status")["x-checkpoints"]
        sec.qmp.cmd("x-colo-lost-heartbeat")
        qemu.qmp.cmd("x-colo-lost-heartbeat")
        ct.wait_for(lambda: sec.qmp.cmd("query-migrate")["status"] ==
                    "completed", 10, "failover")
        st = sec.qmp.cmd("query-colo-status")
        say("   after x-colo-lost-heartbeat: %s" % {
            k: st[k] for k in ("mode", "last-mode", "reason")})
        with open(os.path.join(sec.ram_dir, "pc.ram"), "rb") as f:
            mine = f.read()
        qemu.qmp.cmd("stop")
        with open(qemu.ram_path, "rb") as f:
            theirs = f.read()
        same_as_stock = mine == theirs
        say("   colo-secondary holds committed checkpoint %d; its RAM is "
            "identical to the stock QEMU secondary's: %s" % (n, same_as_stock))
        return same_as_stock
    finally:
        if prim and prim.poll() is None:
            prim.kill()
        qemu.quit()
        sec.quit()


def main():
    tmp = tempfile.mkdtemp(prefix="colo-demo-", dir="/dev/shm")
    try:
        ok1 = part1(tmp)
        ok2 = part2(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if ok1 and ok2:
        say("DEMO SUCCESS: VM state migrated, checkpointed and taken over "
            "intact")
        return 0
    say("DEMO FAILED")
    return 1


if __name__ == "__main__":
    sys.exit(main())
