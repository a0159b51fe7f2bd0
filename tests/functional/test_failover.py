"""Failover (groundwork of the failover issue): after x-colo-lost-heartbeat
colo-secondary resumes the VM from the last committed checkpoint in a
stock QEMU 10.0 (RAM file used in place, x-ignore-shared), and the guest
carries on from there."""

import os
import signal
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402

COUNTER = 0x500000      # tests/guest/colo-guest.asm


def guest_pages_ok(mem):
    """The guest's invariants on one snapshot of its RAM."""
    counter = struct.unpack_from("<I", mem, COUNTER)[0]
    for i in range(1024):
        off = 0x100000 + i * 4096
        magic, idx, c, x = struct.unpack_from("<4I", mem, off)
        if magic != 0x4F4C4F43:
            continue
        if idx != i or x != c ^ 0xA5A5A5A5 or c > counter:
            return False, "page %d: %x %x %x (counter %x)" % (
                i, idx, c, x, counter)
    return True, counter


class Failover(ct.TempDirTestCase):

    def test_automatic_failover_after_sigkill(self):
        """The primary is killed at a random moment (often mid-checkpoint);
        with -heartbeat-timeout the secondary fails over on its own, from
        the last committed checkpoint."""
        if not ct.qemu_available("10.0"):
            self.skipTest("QEMU 10.0 is not installed")
        import random
        rnd = random.Random(5)
        initial = ct.make_colo_initial_stream(self.tmp, bios=ct.GUEST_BIOS)
        for run in range(3):
            d = os.path.join(self.tmp, "run%d" % run)
            os.makedirs(d)
            serial = os.path.join(d, "resumed-serial.log")
            args = ("-nodefaults -display none -accel tcg -bios %s "
                    "-serial file:%s" % (ct.GUEST_BIOS, serial))
            sec = ct.ColoSecondary(d, extra=["-failover-args", args,
                                             "-heartbeat-timeout", "800"])
            pid = None
            try:
                prim = subprocess.Popen(
                    [ct.TEST_PRIMARY, "--initial", initial, "--connect",
                     "tcp:127.0.0.1:%d" % sec.port, "--checkpoints", "1000",
                     "--pages", "3000", "--region", "16:48", "--xbzrle",
                     "--ram-only", "-q", "--ram-dir",
                     os.path.join(d, "model")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.3 + rnd.random())
                prim.send_signal(signal.SIGKILL)
                prim.wait()
                sec.qmp.wait_event("COLO_EXIT")
                with open(os.path.join(sec.ram_dir, "pc.ram"), "rb") as f:
                    committed = f.read()
                n = sec.qmp.cmd("query-colo-status")["x-checkpoints"]
                ok, committed_counter = guest_pages_ok(committed)
                self.assertTrue(ok, committed_counter)
                ev = sec.qmp.wait_event("X_COLO_FAILOVER", 60)
                self.assertNotIn("error", ev["data"], ev)
                pid = ev["data"]["pid"]

                first = ct.wait_for(lambda: ct.guest_counters(serial), 60,
                                    "the resumed guest")[0]
                self.assertGreaterEqual(first, committed_counter)
                print("\nrun %d: %d checkpoints committed, resumed at "
                      "C=%x (committed %x)" % (run, n, first,
                                               committed_counter),
                      file=sys.stderr)
            finally:
                ct.kill_pid(pid)
                self.assertEqual(sec.quit(), 0, sec.stderr())

    def test_resume_in_stock_qemu(self):
        if not ct.qemu_available("10.0"):
            self.skipTest("QEMU 10.0 is not installed")
        initial = ct.make_colo_initial_stream(self.tmp, bios=ct.GUEST_BIOS)
        serial = os.path.join(self.tmp, "resumed-serial.log")
        args = "-nodefaults -display none -accel tcg -bios %s -serial file:%s" \
            % (ct.GUEST_BIOS, serial)
        sec = ct.ColoSecondary(self.tmp, extra=["-failover-args", args])
        pid = None
        try:
            p = subprocess.run(
                [ct.TEST_PRIMARY, "--initial", initial, "--connect",
                 "tcp:127.0.0.1:%d" % sec.port, "--checkpoints", "10",
                 "--region", "16:48", "--xbzrle", "--ram-only", "-q",
                 "--ram-dir", os.path.join(self.tmp, "model")],
                stderr=subprocess.PIPE, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            sec.qmp.wait_event("COLO_EXIT")
            with open(os.path.join(sec.ram_dir, "pc.ram"), "rb") as f:
                committed = f.read()
            ok, committed_counter = guest_pages_ok(committed)
            self.assertTrue(ok, committed_counter)
            self.assertGreater(committed_counter, 0)

            t0 = time.monotonic()
            sec.qmp.cmd("x-colo-lost-heartbeat")
            ev = sec.qmp.wait_event("X_COLO_FAILOVER", 60)
            took = time.monotonic() - t0
            self.assertNotIn("error", ev["data"], ev)
            pid = ev["data"]["pid"]
            st = sec.qmp.cmd("query-colo-status")
            self.assertEqual(st["x-failover"], "done")
            self.assertEqual((st["mode"], st["last-mode"], st["reason"]),
                             ("none", "secondary", "request"))
            q = ct.QMP(ev["data"]["qmp"])
            self.assertTrue(q.cmd("query-status")["running"])
            # The guest goes on from the committed counter.
            first = ct.wait_for(lambda: ct.guest_counters(serial), 60,
                                "the resumed guest to print")[0]
            self.assertGreaterEqual(first, committed_counter)
            self.assertLess(first - committed_counter, 0x20000)
            q.cmd("stop")
            with open(os.path.join(sec.ram_dir, "pc.ram"), "rb") as f:
                mem = f.read()
            ok, now = guest_pages_ok(mem)
            self.assertTrue(ok, now)
            self.assertGreater(now, committed_counter)
            # what the primary wrote above the guest's pages is there too
            with open(os.path.join(self.tmp, "model", "pc.ram"), "rb") as f:
                model = f.read()
            self.assertEqual(mem[16 << 20:48 << 20], model[16 << 20:48 << 20])
            print("\nfailover: heartbeat -> guest running in %.0f ms "
                  "(QEMU says %d us)" % (took * 1000, ev["data"]["resume-us"]),
                  file=sys.stderr)
            q.cmd("quit")
            q.close()
        finally:
            ct.kill_pid(pid)
            self.assertEqual(sec.quit(), 0, sec.stderr())


if __name__ == "__main__":
    unittest.main(verbosity=2)
