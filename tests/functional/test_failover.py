"""Failover (groundwork of the failover issue): after x-colo-lost-heartbeat
colo-secondary resumes the VM from the last committed checkpoint in a
stock QEMU 10.0 (RAM file used in place, x-ignore-shared), and the guest
carries on from there."""

import os
import shutil
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import colodecode  # noqa: E402
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


def test_primary_argv(initial, port, model, checkpoints, *extra):
    """colo-test-primary rewriting 16-48 MiB of the colo-guest with XBZRLE,
    RAM only, its model of the secondary's RAM in @model."""
    return [ct.TEST_PRIMARY, "--initial", initial, "--connect",
            "tcp:127.0.0.1:%d" % port, "--checkpoints", str(checkpoints),
            "--region", "16:48", "--xbzrle", "--ram-only", "-q",
            "--ram-dir", model] + list(extra)


def check_guest_runs_on(test, serial, ram_dir, committed, lead, q):
    """The resumed colo-guest prints a counter from @committed on (less
    than @lead above it); stopped through @q, its RAM (@ram_dir/pc.ram)
    passes its own checks and is past @committed.  Returns (first
    printed counter, that RAM)."""
    first = ct.wait_for(lambda: ct.guest_counters(serial), 60,
                        "the resumed guest to print")[0]
    with open(serial, "rb") as f:
        said = f.read()[:400]
    test.assertGreaterEqual(first, committed, "resumed guest said %r" % said)
    test.assertLess(first - committed, lead, "resumed guest said %r" % said)
    q.cmd("stop")
    with open(os.path.join(ram_dir, "pc.ram"), "rb") as f:
        mem = f.read()
    ok, now = guest_pages_ok(mem)
    test.assertTrue(ok, "resumed state: %s" % now)
    test.assertGreaterEqual(now, committed)
    return first, mem


class Failover(ct.TempDirTestCase):

    def test_automatic_failover_after_sigkill(self):
        """The primary is killed at a random moment (often mid-checkpoint);
        with -heartbeat-timeout the secondary fails over on its own.

        The oracle is the test's: every byte the primary sent goes through
        a recorder, and the independent decoder (colodecode.py) computes
        the RAM and device state of each committed checkpoint from it.
        The failover QEMU is started with -S: while it has loaded the
        committed state but not yet run, its RAM must be exactly that of
        checkpoint n (query-colo-status x-checkpoints), not n - 1, not a
        mix; then it runs and the guest goes on from there."""
        ct.require_qemu("10.0")
        import random
        rnd = random.Random(5)
        initial = ct.make_colo_initial_stream(self.tmp, bios=ct.GUEST_BIOS)
        for run in range(3):
            with self.subTest(run=run):
                self.one_sigkill_run(run, rnd, initial)

    def one_sigkill_run(self, run, rnd, initial):
        d = os.path.join(self.tmp, "run%d" % run)
        os.makedirs(d)
        serial = os.path.join(d, "resumed-serial.log")
        args = ("-nodefaults -display none -accel tcg -bios %s "
                "-serial file:%s -S" % (ct.GUEST_BIOS, serial))
        sec = ct.ColoSecondary(d, extra=["-failover-args", args,
                                         "-heartbeat-timeout", "800"])
        capture = os.path.join(d, "p2s.bin")
        rec = ct.TcpRecorder(sec.port, capture)
        pid = None
        q = None
        try:
            prim = subprocess.Popen(
                test_primary_argv(initial, rec.port, os.path.join(d, "model"),
                                  1000, "--pages", "3000"),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")[
                "x-checkpoints"] >= 1, 60, "the first checkpoint")
            time.sleep(rnd.random())
            prim.send_signal(signal.SIGKILL)
            prim.wait()
            ev = sec.qmp.wait_event("COLO_EXIT")
            self.assertEqual(ev["data"]["reason"], "error")
            n = sec.qmp.cmd("query-colo-status")["x-checkpoints"]
            rec.wait()
            with open(capture, "rb") as f:
                session = colodecode.Session(f.read())
            # the decoder saw at least n complete checkpoints (n + 1
            # states with the initial one); the cut one is never applied
            self.assertGreaterEqual(len(session.states), n + 1)

            ev = sec.qmp.wait_event("X_COLO_FAILOVER", 60)
            self.assertNotIn("error", ev["data"], ev)
            self.assertFalse(ev["data"]["running"])
            pid = ev["data"]["pid"]
            q = ct.QMP(ev["data"]["qmp"])
            self.assertFalse(q.cmd("query-status")["running"])
            # the paused failover QEMU: RAM is the RAM file, device state
            # is what it loaded
            self.assertEqual(ct.ram_matches(sec.ram_dir,
                                            session.states[n]), {},
                             "the resumed VM is not checkpoint %d" % n)
            with open(os.path.join(sec.ram_dir, "device-state.bin"),
                      "rb") as f:
                self.assertEqual(f.read(), session.blobs[n])
            with open(os.path.join(sec.ram_dir, "pc.ram"), "rb") as f:
                ok, committed_counter = guest_pages_ok(f.read())
            self.assertTrue(ok, committed_counter)

            q.cmd("cont")
            first, _ = check_guest_runs_on(self, serial, sec.ram_dir,
                                           committed_counter, 0x20000, q)
            print("\nrun %d: %d checkpoints committed (%d decoded), "
                  "resumed at C=%x (committed %x)" % (
                      run, n, len(session.states) - 1, first,
                      committed_counter), file=sys.stderr)
        finally:
            if q:
                q.close()
            ct.kill_pid(pid)
            self.assertEqual(sec.quit(), 0, sec.stderr())
            shutil.rmtree(d, ignore_errors=True)

    def test_resume_in_stock_qemu(self):
        ct.require_qemu("10.0")
        initial = ct.make_colo_initial_stream(self.tmp, bios=ct.GUEST_BIOS)
        serial = os.path.join(self.tmp, "resumed-serial.log")
        args = "-nodefaults -display none -accel tcg -bios %s -serial file:%s" \
            % (ct.GUEST_BIOS, serial)
        sec = ct.ColoSecondary(self.tmp, extra=["-failover-args", args])
        pid = None
        try:
            p = subprocess.run(
                test_primary_argv(initial, sec.port,
                                  os.path.join(self.tmp, "model"), 10),
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
            _, mem = check_guest_runs_on(self, serial, sec.ram_dir,
                                         committed_counter, 0x20000, q)
            # what the primary wrote above the guest's pages is there too
            with open(os.path.join(self.tmp, "model", "pc.ram"), "rb") as f:
                model = f.read()
            self.assertEqual(mem[16 << 20:48 << 20], model[16 << 20:48 << 20])
            print("\nfailover: heartbeat -> guest running in %.0f ms "
                  "(QEMU says %d us)" % (took * 1000, ev["data"]["resume-us"]),
                  file=sys.stderr)
            # The QEMU runs on the RAM folder's files and holds its lock:
            # a colo-secondary started on the folder again (a restarted
            # systemd unit) refuses it, also once ours has gone.
            fds = [os.readlink(os.path.join("/proc/%d/fd" % pid, fd))
                   for fd in os.listdir("/proc/%d/fd" % pid)]
            self.assertIn(os.path.join(sec.ram_dir, "colo-owner.lock"), fds)
            self.assertEqual(sec.quit(), 0, sec.stderr())
            again = subprocess.run(
                [ct.SECONDARY, "-ram-dir", sec.ram_dir, "-incoming",
                 "defer", "-once"],
                stderr=subprocess.PIPE, text=True, timeout=30)
            self.assertEqual(again.returncode, 2, again.stderr)
            self.assertIn("is in use", again.stderr)
            # the VM's QEMU lives on (check_guest_runs_on left it paused)
            self.assertEqual(q.cmd("query-status")["status"], "paused")
            q.cmd("quit")
            q.close()
        finally:
            ct.kill_pid(pid)
            sec.quit()


if __name__ == "__main__":
    ct.main()
