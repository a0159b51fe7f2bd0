"""libvirt: colo-primary protects a running libvirt domain, and the standby
fails over into a libvirt domain (docs/libvirt.rst).

Two real libvirtd (Debian's 9.0), each started by the test in a mount
namespace of its own (colotest.libvirt: its own sockets, state, logs and
configuration), play the primary host and the standby host; the domains
run the colo-guest under TCG in Debian's QEMU 10.0.  The oracles are the
test's and the guest's: colo-primary's --verify-secondary compares the
secondary's RAM with the domain's after every checkpoint; the colo-guest's
own invariants hold in the committed RAM and in the RAM of the domain
libvirt restored on the standby, and its counter goes on from the
committed one there; libvirt itself (virsh) says what runs where."""

import json
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402
from colotest.libvirt import (NIC_MAC, Libvirtd,  # noqa: E402
                              colo_guest_xml, linux_guest_xml,
                              require_libvirt)
from test_failover import guest_pages_ok  # noqa: E402

NAME = "colo-lv"
UUID = "0d6c3b7e-5c1a-4f7e-9d59-6f1b2a3c4d5e"
CHECKPOINTS = int(os.environ.get("COLO_LIBVIRT_CHECKPOINTS", "20"))


class Libvirt(ct.TempDirTestCase):

    def setUp(self):
        super().setUp()
        require_libvirt()
        ct.require_qemu("10.0")
        self.daemons = []
        self.procs = []
        self.secondaries = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for sec in self.secondaries:
            sec.quit()
        for d in self.daemons:
            d.stop()
        super().tearDown()

    # --- helpers --------------------------------------------------------

    def libvirtd(self, name):
        d = Libvirtd(self.tmp, name)
        self.daemons.append(d)
        return d

    def define(self, lv, serial, start=True, **kw):
        """Domain NAME on @lv printing on @serial; started (transient)
        unless not @start; returns its XML file."""
        xml = os.path.join(self.tmp, "%s.xml" % os.path.basename(lv.root))
        with open(xml, "w") as f:
            f.write(colo_guest_xml(NAME, UUID, serial, **kw))
        if start:
            lv.virsh("create", xml)
            ct.wait_for(lambda: ct.guest_counters(serial), 60, "the guest")
        return xml

    def secondary(self, tag, *extra):
        d = os.path.join(self.tmp, tag)
        os.makedirs(d)
        sec = ct.ColoSecondary(d, extra=list(extra))
        self.secondaries.append(sec)
        return sec

    def protect(self, lv, sec, *extra):
        p = subprocess.Popen(
            [ct.PRIMARY_AGENT, "--libvirt-domain", NAME, "--libvirt-uri",
             lv.uri, "--connect", "tcp:127.0.0.1:%d" % sec.port] +
            list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    def refused(self, lv, uri=None, name=NAME):
        p = subprocess.run(
            [ct.PRIMARY_AGENT, "--libvirt-domain", name, "--libvirt-uri",
             uri or lv.uri, "--connect", "tcp:127.0.0.1:1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 3, p.stderr)
        return p.stderr.decode()

    def libvirt_job_ends_protection(self, lv, agent, ended, *virsh):
        """libvirt's own migration (virsh @virsh...) of the protected
        domain succeeds and ends protection (status 0, @ended).  One that
        lands in a checkpoint's capture is refused by QEMU (one migration
        at a time) or cancelled by colo-primary (it would carry no RAM),
        or libvirt's resume after a failed one finds the VM stopped for
        a capture (QEMU: "Migration is not finalized yet"): libvirt says
        so, and it is run again."""
        for attempt in range(3):
            p = lv.virsh(*virsh, check=False, timeout=120)
            if p.returncode == 0:
                break
            self.assertRegex(p.stderr.decode(), "(?i)migration|canceled")
        self.assertEqual(p.returncode, 0, p.stderr)
        _, err = agent.communicate(timeout=60)
        self.assertEqual(agent.returncode, 0, err)
        self.assertIn("libvirt domain %s %s: protection ended"
                      % (NAME, ended), err.decode())

    @staticmethod
    def checkpoints(sec):
        return sec.qmp.cmd("query-colo-status")["x-checkpoints"]

    def wait_checkpoints(self, sec, n, agent):
        ct.wait_for(lambda: self.checkpoints(sec) >= n or
                    agent.poll() is not None, 120, "%d checkpoints" % n)
        if agent.poll() is not None:
            self.fail("colo-primary ended: %s" % agent.communicate()[1])

    def domain_ram(self, lv):
        """The domain's RAM file in @lv's state folder."""
        ram = os.path.join(lv.root, "var/lib/libvirt/qemu/ram")
        found = [os.path.join(ram, d, "pc.ram") for d in os.listdir(ram)
                 if d.endswith("-" + NAME)]
        self.assertEqual(len(found), 1, os.listdir(ram))
        return found[0]

    # --- tests ----------------------------------------------------------

    def test_protect_fail_over_and_protect_again(self):
        """A running libvirt domain is protected (checkpoints verified
        against its RAM), libvirt's view stays true, its QEMU is killed,
        and the standby's libvirt runs it from the committed checkpoint;
        libvirt's console shows it; that domain is then protected again
        with the same command, its NIC's output held per checkpoint and
        nothing of ours left in its QEMU afterwards."""
        pri, sby = self.libvirtd("primary"), self.libvirtd("standby")
        pserial = os.path.join(self.tmp, "primary-serial.log")
        sserial = os.path.join(self.tmp, "standby-serial.log")
        self.define(pri, pserial, nic=True)
        sxml = self.define(sby, sserial, start=False, console=True,
                           nic=True)
        sec = self.secondary("sec", "-failover-libvirt-xml", sxml,
                             "-failover-libvirt-uri", sby.uri)
        agent = self.protect(pri, sec, "--verify-secondary", sec.ram_dir)
        self.wait_checkpoints(sec, 3, agent)

        # libvirt's view between checkpoints: running, no job of its own
        ct.wait_for(lambda: pri.domstate(NAME).startswith("running"), 10,
                    "domstate running")
        self.assertRegex(pri.virsh("domjobinfo", NAME).out,
                         r"Job type:\s+None")
        # suspend and resume do what they say while protected
        pri.virsh("suspend", NAME)
        n = self.checkpoints(sec)
        self.wait_checkpoints(sec, n + 2, agent)
        self.assertTrue(pri.domstate(NAME).startswith("paused"),
                        pri.domstate(NAME))
        pri.virsh("resume", NAME)
        self.wait_checkpoints(sec, CHECKPOINTS, agent)
        self.assertTrue(pri.domstate(NAME).startswith("running"))

        # the primary host's QEMU dies
        os.kill(pri.qemu_pid(NAME), signal.SIGKILL)
        _, err = agent.communicate(timeout=60)
        self.assertEqual(agent.returncode, 3, err)
        self.assertIn("libvirt domain %s died (its QEMU ended unexpectedly): "
                      "protection ended (the standby may take over)" % NAME,
                      err.decode())
        self.assertNotIn("differ", err.decode())
        sec.qmp.wait_event("COLO_EXIT", 30)
        n = self.checkpoints(sec)
        self.assertGreaterEqual(n, CHECKPOINTS)
        with open(os.path.join(sec.ram_dir, "pc.ram"), "rb") as f:
            ok, committed = guest_pages_ok(f.read())
        self.assertTrue(ok, "committed state: %s" % committed)
        self.assertEqual(pri.running(), [])

        sec.qmp.cmd("x-colo-lost-heartbeat")
        ev = sec.qmp.wait_event("X_COLO_FAILOVER", 120)
        self.assertNotIn("error", ev["data"], ev)
        self.assertEqual(ev["data"]["libvirt-domain"], NAME)

        # the standby's libvirt runs it, the same domain
        self.assertEqual(sby.running(), [NAME])
        info = sby.virsh("dominfo", NAME).out
        self.assertRegex(info, r"UUID:\s+%s" % UUID)
        self.assertRegex(info, r"State:\s+running")
        first = ct.wait_for(lambda: ct.guest_counters(sserial), 60,
                            "the restored guest to print")[0]
        self.assertGreaterEqual(first, committed)
        self.assertLess(first - committed, 0x10001)
        # virsh console: the guest's serial port, live
        shown = sby.console(NAME, 3)
        self.assertIn("Connected to domain", shown)
        self.assertRegex(shown, r"colo-guest C=[0-9a-f]{8}")
        sby.virsh("suspend", NAME)
        with open(self.domain_ram(sby), "rb") as f:
            ok, now = guest_pages_ok(f.read())
        self.assertTrue(ok, "restored state: %s" % now)
        self.assertGreaterEqual(now, committed)
        sby.virsh("resume", NAME)

        # protected again, into a new standby, with the same command
        sec2 = self.secondary("sec2")
        again = self.protect(sby, sec2, "--verify-secondary", sec2.ram_dir,
                             "--checkpoints", "10")
        out, err = again.communicate(timeout=180)
        self.assertEqual(again.returncode, 0, err)
        self.assertIn("done: 10 checkpoints", out.decode())
        self.assertIn("libvirt's pass-through", out.decode())
        # the NIC's output was held per checkpoint (through descriptors
        # passed to QEMU), and nothing of ours is left in it
        self.assertIn("network output: held until its checkpoint commits, "
                      "on hostnet0 (user)", out.decode())
        objects = sby.virsh("qemu-monitor-command", NAME, json.dumps(
            {"execute": "qom-list", "arguments": {"path": "/objects"}})).out
        self.assertNotIn("colo-", objects)
        self.assertIn(NIC_MAC, sby.virsh("domiflist", NAME).out)

    def test_end_of_the_domain_and_refusals(self):
        """Protection ends cleanly when libvirt stops the domain (destroy,
        libvirt's own save, its live migration to another host), leaving
        nothing behind, and what libvirt saves or migrates carries the
        RAM; domains colo-primary cannot protect are refused, saying
        why."""
        lv = self.libvirtd("primary")
        serial = os.path.join(self.tmp, "serial.log")

        # refused: no such domain, not reachable, RAM not in a shared file
        self.assertIn("libvirt has no domain nosuch",
                      self.refused(lv, name="nosuch"))
        self.define(lv, serial, shared_ram=False)
        err = self.refused(lv)
        self.assertIn("<memoryBacking><source type='file'/><access "
                      "mode='shared'/></memoryBacking>", err)
        lv.virsh("destroy", NAME)

        # a second monitor in the XML: the faster way in
        xml = self.define(lv, serial, monitor="/run/colo-lv.qmp")
        err = self.refused(lv, uri=lv.ro_uri)
        self.assertIn("libvirt does not let colo-primary reach domain %s's "
                      "QEMU" % NAME, err)
        self.assertIn("read only", err)
        sec = self.secondary("sec")
        agent = self.protect(lv, sec, "--verify-secondary", sec.ram_dir)
        self.wait_checkpoints(sec, 5, agent)
        lv.virsh("destroy", NAME)
        out, err = agent.communicate(timeout=60)
        self.assertEqual(agent.returncode, 0, err)
        self.assertIn("QEMU's QMP: the second monitor of the domain's XML, "
                      "/run/colo-lv.qmp", out.decode())
        self.assertIn("libvirt domain %s destroyed: protection ended" % NAME,
                      err.decode())
        ct.wait_for(lambda: not lv.qemu_pids(), 10, "no QEMU left")
        self.assertEqual(lv.running(), [])
        sec.qmp.wait_event("COLO_EXIT", 30)
        self.assertEqual(sec.qmp.cmd("query-colo-status")["x-failover"],
                         "none")

        # libvirt's own save (a migration to a file) ends protection, and
        # carries the RAM: the saved domain restores and runs on.  libvirt
        # records in the image whether the domain ran when the save began,
        # and a checkpoint's pause looks paused to it: --running, as
        # docs/libvirt.rst tells operators
        lv.virsh("create", xml)
        sec2 = self.secondary("sec2")
        agent = self.protect(lv, sec2)
        self.wait_checkpoints(sec2, 5, agent)
        image = os.path.join(self.tmp, "saved.img")
        self.libvirt_job_ends_protection(lv, agent, "saved",
                                         "save", NAME, image,
                                         "--running")
        before = ct.guest_counters(serial)[-1]
        lv.virsh("restore", image)
        # libvirt opens the serial file anew: what the restored guest
        # prints goes on from where the saved one was
        first = ct.wait_for(lambda: ct.guest_counters(serial), 60,
                            "the restored guest to print")[0]
        self.assertGreaterEqual(first, before)
        lv.virsh("suspend", NAME)
        with open(self.domain_ram(lv), "rb") as f:
            ok, now = guest_pages_ok(f.read())
        self.assertTrue(ok, "restored state: %s" % now)
        self.assertTrue(re.search(r"Job type:\s+None",
                                  lv.virsh("domjobinfo", NAME).out))
        lv.virsh("resume", NAME)

        # libvirt's live migration to another host ends protection, and
        # carries the RAM: the domain runs on there, its pages check
        other = self.libvirtd("other")
        sec3 = self.secondary("sec3")
        agent = self.protect(lv, sec3)
        self.wait_checkpoints(sec3, 5, agent)
        self.libvirt_job_ends_protection(lv, agent,
                                         "migrated away by libvirt",
                                         "migrate", "--live", NAME,
                                         other.uri, "--migrateuri",
                                         "tcp:127.0.0.1")
        self.assertEqual((lv.running(), other.running()), ([], [NAME]))
        other.virsh("suspend", NAME)
        with open(self.domain_ram(other), "rb") as f:
            ok, moved = guest_pages_ok(f.read())
        self.assertTrue(ok, "migrated state: %s" % moved)
        self.assertGreater(moved, now)

    def test_linux_guest_until_it_powers_off(self):
        """The Linux guest as a libvirt domain, protected (checkpoints
        verified against its RAM) until it powers itself off, which is
        where a virsh shutdown ends (our busybox guest has no ACPI
        daemon to answer one): libvirt says it shut down, protection
        ends with status 0, the standby does not take over."""
        ct.require_linux_guest()
        lv = self.libvirtd("primary")
        serial = os.path.join(self.tmp, "serial.log")
        xml = os.path.join(self.tmp, "linux.xml")
        with open(xml, "w") as f:
            f.write(linux_guest_xml(NAME, UUID, serial,
                                    "colo.run=lifespan colo.life=60"))
        lv.virsh("create", xml)
        ct.wait_for(lambda: "tick 1 " in ct.read_text(serial), 120,
                    "the Linux guest to tick")
        sec = self.secondary("sec")
        agent = self.protect(lv, sec, "--verify-secondary", sec.ram_dir)
        self.wait_checkpoints(sec, CHECKPOINTS, agent)
        out, err = agent.communicate(timeout=120)
        self.assertEqual(agent.returncode, 0, err)
        self.assertIn("libvirt domain %s shut down: protection ended" % NAME,
                      err.decode())
        self.assertNotIn("differ", err.decode())
        self.assertIn("lifespan: powering off", ct.read_text(serial))
        self.assertEqual(lv.running(), [])
        ct.wait_for(lambda: not lv.qemu_pids(), 10, "no QEMU left")
        sec.qmp.wait_event("COLO_EXIT", 30)
        self.assertGreaterEqual(self.checkpoints(sec), CHECKPOINTS)
        self.assertEqual(sec.qmp.cmd("query-colo-status")["x-failover"],
                         "none")


if __name__ == "__main__":
    # meson names the colo-guest cases; make soak adds the Linux guest's
    if os.environ.get("COLO_LIBVIRT_LINUX_GUEST") == "1" and \
            len(sys.argv) > 1:
        sys.argv.append("Libvirt.test_linux_guest_until_it_powers_off")
    ct.main()
