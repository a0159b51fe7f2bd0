#!/usr/bin/env python3
"""make demo: colo-standby end to end on this machine.

1. A running VM (stock QEMU 10.0, a guest that keeps its memory busy) is
   live-migrated into colo-secondary; we show what it loaded and check it
   against the source's RAM.
2. A protected VM: a COLO primary (tools/colo-test-primary, until
   colo-primary lands) checkpoints a VM into colo-secondary every 100 ms;
   the primary is killed with SIGKILL while a checkpoint is on its way;
   colo-secondary fails over by itself (-heartbeat-timeout) and the guest
   runs on in a stock QEMU from the last committed checkpoint.

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
    say("== 2. a protected VM: checkpoints, the primary killed with SIGKILL "
        "mid-checkpoint, automatic failover into stock QEMU")
    initial = ct.make_colo_initial_stream(tmp, bios=ct.GUEST_BIOS)
    sdir = os.path.join(tmp, "colo")
    os.makedirs(sdir)
    serial = os.path.join(tmp, "resumed-serial.log")
    args = ("-nodefaults -display none -accel tcg -bios %s -serial file:%s"
            % (ct.GUEST_BIOS, serial))
    sec = ct.ColoSecondary(sdir, extra=["-failover-args", args,
                                        "-heartbeat-timeout", "300"])
    prim = None
    pid = None
    try:
        total = 10 if SHORT else 40
        prim = subprocess.Popen(
            [ct.TEST_PRIMARY, "--initial", initial,
             "--connect", "tcp:127.0.0.1:%d" % sec.port,
             "--checkpoints", str(total), "--pages", "4000", "--xbzrle",
             "--ram-only", "--region", "16:48", "--delay-ms", "100",
             "--ram-dir", os.path.join(tmp, "model")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seen = 0
        while seen < total // 2:
            line = prim.stdout.readline().decode()
            if not line:
                break
            if line.startswith("checkpoint"):
                seen += 1
                st = sec.qmp.cmd("query-colo-status")
                say("   %-52s | secondary: %2d committed, commit %5.2f ms, "
                    "%5d pages" % (line.strip(), st["x-checkpoints"],
                                   st["x-last-commit-us"] / 1000,
                                   st["x-last-ram-pages"]))
        time.sleep(0.13)        # the next checkpoint is on its way
        prim.send_signal(signal.SIGKILL)
        prim.wait()
        say("   primary killed with SIGKILL")
        ev = sec.qmp.wait_event("COLO_EXIT", 10)
        n = sec.qmp.cmd("query-colo-status")["x-checkpoints"]
        with open(os.path.join(sec.ram_dir, "pc.ram"), "rb") as f:
            f.seek(0x500000)
            committed = int.from_bytes(f.read(4), "little")
        say("   event COLO_EXIT %s; last committed checkpoint: %d (guest "
            "counter %#x)" % (ev["data"], n, committed))
        ev = sec.qmp.wait_event("X_COLO_FAILOVER", 60)
        if "error" in ev["data"]:
            say("   failover failed: %s" % ev["data"]["error"])
            return False
        pid = ev["data"]["pid"]
        st = sec.qmp.cmd("query-colo-status")
        say("   failover: %s; the VM runs in stock QEMU pid %d, resumed in "
            "%.0f ms" % ({k: st[k] for k in ("mode", "last-mode", "reason")},
                         pid, ev["data"]["resume-us"] / 1000))

        def printed():
            try:
                with open(serial, errors="replace") as f:
                    return [x.strip() for x in f if "C=" in x]
            except FileNotFoundError:
                return None
        ct.wait_for(lambda: len(printed() or []) >= 3, 60,
                    "the resumed guest")
        lines = printed()
        for x in lines[:3]:
            say("   resumed guest serial: %s" % x)
        first = int(lines[0].split("C=")[1], 16)
        ok = first >= committed
        say("   the guest continued from the committed checkpoint: %s "
            "(%#x >= %#x)" % (ok, first, committed))
        return ok
    finally:
        if prim and prim.poll() is None:
            prim.kill()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sec.quit()


def main():
    tmp = tempfile.mkdtemp(prefix="colo-demo-", dir="/dev/shm")
    try:
        ok1 = part1(tmp)
        ok2 = part2(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if ok1 and ok2:
        say("DEMO SUCCESS: the VM was migrated, checkpointed, and after the "
            "primary was killed it runs on in stock QEMU from its last "
            "committed checkpoint")
        return 0
    say("DEMO FAILED")
    return 1


if __name__ == "__main__":
    sys.exit(main())
