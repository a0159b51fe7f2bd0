#!/usr/bin/env python3
"""make demo-libvirt: a libvirt domain protected end to end on this
machine (docs/libvirt.rst).

Two libvirtd play the primary host and the standby host, each started
here in a mount namespace of its own (tests/functional/colotest/
libvirt.py), so nothing of the machine's libvirt changes.  The colo-guest
runs as domain "vm1" on the primary's libvirt; colo-secondary waits as its
standby, told to fail over into the standby's libvirt; colo-primary
--libvirt-domain protects it.  The domain's QEMU is killed; on
x-colo-lost-heartbeat the standby's libvirt restores vm1 from the last
committed checkpoint, and colo-primary protects it again from there, with
the same command, into a new standby.

DEMO_SHORT=1 runs fewer checkpoints."""

import os
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import colotest as ct  # noqa: E402
from colotest.libvirt import (Libvirtd, colo_guest_xml,  # noqa: E402
                              require_libvirt)
from test_failover import guest_pages_ok  # noqa: E402

SHORT = os.environ.get("DEMO_SHORT") == "1"
NAME = "vm1"
UUID = "3f0a8c52-7d1e-4b6a-9c2f-1e5d7a9b0c3d"


def say(msg):
    print(msg, flush=True)


def checkpoints(sec):
    return sec.qmp.cmd("query-colo-status")["x-checkpoints"]


def protect(lv, sec, n):
    return subprocess.Popen(
        [ct.PRIMARY_AGENT, "--libvirt-domain", NAME, "--libvirt-uri", lv.uri,
         "--connect", "tcp:127.0.0.1:%d" % sec.port, "--verify-secondary",
         sec.ram_dir, "--checkpoints", str(n)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def demo(tmp):
    n = 10 if SHORT else 40
    pri = Libvirtd(tmp, "primary")
    sby = Libvirtd(tmp, "standby")
    secs = []
    try:
        say("== two libvirtd (%s), each in a mount namespace of its own:"
            "\n   primary %s\n   standby %s" % (
                pri.virsh("version").out.splitlines()[1].split(": ")[-1],
                pri.uri, sby.uri))
        pserial = os.path.join(tmp, "primary-serial.log")
        sserial = os.path.join(tmp, "standby-serial.log")
        pxml = os.path.join(tmp, "primary.xml")
        sxml = os.path.join(tmp, "standby.xml")
        with open(pxml, "w") as f:
            f.write(colo_guest_xml(NAME, UUID, pserial))
        with open(sxml, "w") as f:
            f.write(colo_guest_xml(NAME, UUID, sserial))
        pri.virsh("create", pxml)
        ct.wait_for(lambda: ct.guest_counters(pserial), 60, "the guest")
        say("== domain %s runs on the primary's libvirt:\n%s" % (
            NAME, pri.virsh("list").out.rstrip()))

        d = os.path.join(tmp, "standby")
        os.makedirs(d)
        sec = ct.ColoSecondary(d, extra=["-failover-libvirt-xml", sxml,
                                         "-failover-libvirt-uri", sby.uri])
        secs.append(sec)
        say("== colo-primary --libvirt-domain %s protects it (%d "
            "checkpoints, each verified against the domain's RAM), then "
            "keeps protecting" % (NAME, n))
        agent = protect(pri, sec, 0)
        ct.wait_for(lambda: checkpoints(sec) >= n or agent.poll() is not None,
                    300, "checkpoints")
        say("   %d checkpoints committed; libvirt says: %s, %s" % (
            checkpoints(sec), pri.domstate(NAME),
            " ".join(pri.virsh("domjobinfo", NAME).out.split()[:3])))

        say("== SIGKILL to the domain's QEMU (pid %d)" % pri.qemu_pid(NAME))
        os.kill(pri.qemu_pid(NAME), signal.SIGKILL)
        out, err = agent.communicate(timeout=60)
        say("   " + err.decode().strip().splitlines()[-1])
        last = [x for x in out.decode().splitlines() if "checkpoint" in x]
        if last:
            say("   its last: %s" % last[-1][:110])
        sec.qmp.wait_event("COLO_EXIT", 30)
        say("   primary's libvirt now runs: %s" % (pri.running() or "nothing"))

        with open(os.path.join(sec.ram_dir, "pc.ram"), "rb") as f:
            ok, committed = guest_pages_ok(f.read())
        if not ok:
            raise RuntimeError("committed state: %s" % committed)
        say("== x-colo-lost-heartbeat: the standby restores %s into its "
            "libvirt from checkpoint %d (the guest's counter there: %08x, "
            "its pages check)" % (NAME, checkpoints(sec), committed))
        sec.qmp.cmd("x-colo-lost-heartbeat")
        ev = sec.qmp.wait_event("X_COLO_FAILOVER", 120)
        if "error" in ev["data"]:
            raise RuntimeError(ev["data"]["error"])
        say("   domain %s running after %.0f ms:\n%s" % (
            ev["data"]["libvirt-domain"], ev["data"]["resume-us"] / 1000,
            sby.virsh("list").out.rstrip()))
        info = sby.virsh("dominfo", NAME).out
        say("   " + " ".join(line.strip() for line in info.splitlines()
                             if line.startswith(("UUID", "State"))))
        first = ct.wait_for(lambda: ct.guest_counters(sserial), 60,
                            "the restored guest")[0]
        say("   the guest goes on from the committed checkpoint: it "
            "printed %08x first on the standby (%08x last on the primary, "
            "after that checkpoint: serial output is not held)" % (
                first, ct.guest_counters(pserial)[-1]))

        d2 = os.path.join(tmp, "standby2")
        os.makedirs(d2)
        sec2 = ct.ColoSecondary(d2)
        secs.append(sec2)
        say("== the same command protects it again, into a new standby")
        again = protect(sby, sec2, n)
        out, err = again.communicate(timeout=300)
        if again.returncode != 0:
            raise RuntimeError(err.decode())
        say("   " + out.decode().strip().splitlines()[-1])
        say("== done")
    finally:
        for sec in secs:
            sec.quit()
        pri.stop()
        sby.stop()


def main():
    try:
        require_libvirt()
    except Exception as e:
        sys.exit("demo-libvirt: %s" % e)
    tmp = tempfile.mkdtemp(prefix="colo-demo-libvirt-", dir="/dev/shm")
    os.environ["COLO_PRIMARY_RUNDIR"] = tmp
    try:
        demo(tmp)
    finally:
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
