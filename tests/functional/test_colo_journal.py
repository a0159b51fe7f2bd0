"""Crash-consistent commit: colo-secondary is killed with SIGKILL inside
the commit of a checkpoint, at well over 100 points, then a new
colo-secondary opens the same RAM folder.  Every time the RAM files and
the recorded device state must be exactly checkpoint N or N+1 (N+1 once
the journal is in place), never a mix.

The points: the test hook COLO_TEST_CRASH (migration/colo-journal.h)
stops the commit of checkpoint K after its journal was written but not
renamed, after the rename, after 0, 1, ... n-1 of its n pages were
copied, after the copy, after the record; plus kills from outside at
random moments while the checkpoints stream in.

The oracle is outside the code under test: the real QEMU 7.2 COLO
capture and the fake XBZRLE one, decoded by tests/functional/colodecode.py
(the RAM digests and device blob of every committed checkpoint).  A
failover from a recovered folder is checked with a real VM in
ColoJournalFailover: stock QEMU 10.0 running the colo-guest, colo-primary,
and the test's own record of the VM's RAM and registers at every pause."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import colodecode  # noqa: E402
import colotest as ct  # noqa: E402
from test_failover import check_guest_runs_on, guest_pages_ok  # noqa: E402

PRIMARY = os.environ.get("COLO_PRIMARY", os.path.join(
    ct.BUILD_ROOT, "tools", "colo-primary"))
# Kills from outside at random moments, per capture.
RANDOM_KILLS = int(os.environ.get("COLO_JOURNAL_RANDOM_KILLS", "8"))
# Checkpoints of the real VM whose commit is cut.
FAILOVER_POINTS = [p for p in os.environ.get(
    "COLO_JOURNAL_FAILOVER_POINTS",
    "journal-tmp,apply:1,committed").split(",") if p]

PHASES_BEFORE = ("journal-tmp",)            # the folder holds N
PHASES_AFTER = ("journal", "applied", "committed")  # it holds N+1


def load(name):
    with open(os.path.join(ct.DATA, name), "rb") as f:
        return colodecode.Session(f.read())


def flushed_pages(tmp, session):
    """Pages each checkpoint's commit copies (index k: checkpoint k,
    0 unused), from a run without faults."""
    sec = ct.ColoSecondary(tmp, ram_dir=os.path.join(tmp, "probe"))
    pages = [0]
    try:
        sock = sec.connect()
        ct.replay(sock, session, on_commit=lambda k: k and pages.append(
            sec.qmp.cmd("query-colo-status")["x-last-flushed-pages"]))
        sock.close()
    finally:
        sec.quit()
        shutil.rmtree(sec.ram_dir, ignore_errors=True)
    return pages


class ColoJournalCrash(ct.TempDirTestCase):

    def check_folder(self, ram_dir, session, allowed):
        """A new colo-secondary on @ram_dir recovers one of the
        checkpoints @allowed; returns it."""
        d = os.path.join(self.tmp, "restart")
        os.makedirs(d, exist_ok=True)
        sec = ct.Secondary(d, ram_dir=ram_dir)
        try:
            st = sec.qmp.cmd("query-colo-status")
        finally:
            rc = sec.quit()
        log = sec.stderr()
        self.assertEqual(rc, 0, log)
        self.assertIn("x-recovered", st, log)
        got = st["x-recovered"]["checkpoint"]
        self.assertIn(got, allowed, log)
        self.assertEqual(ct.ram_matches(ram_dir, session.states[got]), {},
                         "RAM files are not checkpoint %d (%s)" % (got, log))
        rec = ct.read_record(os.path.join(ram_dir, "colo-checkpoint"))
        self.assertEqual(rec["number"], got)
        self.assertEqual(rec["devices"], session.blobs[got],
                         "recorded device state is not checkpoint %d" % got)
        with open(os.path.join(ram_dir, "device-state.bin"), "rb") as f:
            self.assertEqual(f.read(), session.blobs[got],
                             "device-state.bin is not checkpoint %d" % got)
        left = set(os.listdir(ram_dir)) & {"colo-journal", "colo-cache",
                                           "colo-journal.tmp"}
        self.assertEqual(left, set(), "left behind after recovery")
        return got, st["x-recovered"]

    def replay_until_killed(self, session, spec, ram_dir):
        """Replays @session into a colo-secondary on @ram_dir that kills
        itself at COLO_TEST_CRASH=@spec."""
        sec = ct.ColoSecondary(self.tmp, ram_dir=ram_dir,
                               env={"COLO_TEST_CRASH": spec})
        try:
            sock = sec.connect()
            try:
                ct.replay(sock, session)
            except (OSError, EOFError, AssertionError):
                pass
            sock.close()
            rc = sec.proc.wait(timeout=30)
        finally:
            sec.qmp.close()
            sec.log.close()
        self.assertEqual(rc, -signal.SIGKILL, "COLO_TEST_CRASH=%s did not "
                         "fire: %s" % (spec, sec.stderr()))

    def crash_once(self, session, k, spec, allowed):
        ram_dir = os.path.join(self.tmp, "ram")
        self.replay_until_killed(session, spec, ram_dir)
        got, rec = self.check_folder(ram_dir, session, allowed)
        shutil.rmtree(ram_dir)
        return got, rec

    def points(self, pages):
        """(checkpoint, COLO_TEST_CRASH spec, checkpoints allowed after)"""
        out = []
        for k in range(1, len(pages)):
            n = pages[k]
            for ph in PHASES_BEFORE:
                out.append((k, "%d:%s" % (k, ph), (k - 1,)))
            for ph in PHASES_AFTER:
                out.append((k, "%d:%s" % (k, ph), (k,)))
            for i in sorted({0, 1, n - 1} | {n * j // 8 for j in range(8)}):
                if 0 <= i < n:
                    out.append((k, "%d:apply:%d" % (k, i), (k,)))
        return out

    def run_capture(self, name):
        session = load(name)
        pages = flushed_pages(self.tmp, session)
        points = self.points(pages)
        replayed = 0
        for k, spec, allowed in points:
            with self.subTest(capture=name, crash=spec):
                got, rec = self.crash_once(session, k, spec, allowed)
                replayed += rec["replayed"]
        rnd = random.Random(7)
        randoms = 0
        for i in range(RANDOM_KILLS):
            with self.subTest(capture=name, random_kill=i):
                randoms += self.random_kill(session, rnd)
        print("\n%s: %d checkpoints (%s pages each), %d hook points "
              "(%d replayed a journal), %d random kills" % (
                  name, len(pages) - 1, pages[1:], len(points), replayed,
                  randoms), file=sys.stderr)
        return len(points) + randoms

    def random_kill(self, session, rnd):
        """SIGKILL from outside after a random checkpoint's device state
        has gone out, a random few hundred microseconds later."""
        k = rnd.randrange(1, len(session.layouts) + 1)
        end = session.layouts[k - 1]["end"]
        ram_dir = os.path.join(self.tmp, "ram")
        sec = ct.ColoSecondary(self.tmp, ram_dir=ram_dir)
        try:
            sock = sec.connect()
            try:
                ct.replay(sock, session, stop_at=end - 1)
                sock.sendall(session.data[end - 1:end])
            except (OSError, EOFError, AssertionError):
                pass
            time.sleep(rnd.uniform(0, 0.002))
            sec.proc.send_signal(signal.SIGKILL)
            sec.proc.wait(timeout=30)
            sock.close()
        finally:
            sec.qmp.close()
            sec.log.close()
        self.check_folder(ram_dir, session, (k - 1, k))
        shutil.rmtree(ram_dir)
        return 1

    def test_crash_inside_commits(self):
        total = self.run_capture("colo72kvm.p2s.bin")
        total += self.run_capture("colo-fake.p2s.bin")
        self.assertGreaterEqual(total, 100)

    def test_journal_needs_its_cache(self):
        """A journal whose cache file was removed is refused with a reason
        and the folder is left alone (nothing is half replayed)."""
        session = load("colo72kvm.p2s.bin")
        ram_dir = os.path.join(self.tmp, "ram")
        self.replay_until_killed(session, "2:journal", ram_dir)
        shutil.rmtree(os.path.join(ram_dir, "colo-cache"))
        before = ct.ram_files(ram_dir)
        p = subprocess.run([ct.SECONDARY, "-ram-dir", ram_dir, "-incoming",
                            "defer"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 1, out)
        self.assertIn("cannot replay the checkpoint journal", out)
        self.assertIn("cache file", out)
        self.assertEqual(ct.ram_files(ram_dir), before)
        self.assertTrue(os.path.exists(os.path.join(ram_dir,
                                                    "colo-journal")))


class ColoJournalFailover(ct.TempDirTestCase):
    """A real VM: the secondary dies inside the commit of checkpoint K, the
    primary is gone too; a new colo-secondary on the folder resumes the VM
    in stock QEMU 10.0 from exactly what the folder holds."""

    def one_point(self, point, k=6):
        d = os.path.join(self.tmp, point.replace(":", "-"))
        os.makedirs(d)
        vm = ct.Qemu("10.0", d, machine="pc", mem_mb=64, bios=ct.GUEST_BIOS)
        serial = os.path.join(d, "resumed-serial.log")
        args = ("-nodefaults -display none -accel tcg -bios %s "
                "-serial file:%s -S" % (ct.GUEST_BIOS, serial))
        phase, _, at = point.partition(":")
        spec = "%d:%s" % (k, phase)
        if at:
            spec += ":%d" % int(at)
        sdir = os.path.join(d, "sec")
        os.makedirs(sdir)
        ram_dir = os.path.join(d, "ram")
        sec = ct.ColoSecondary(sdir, ram_dir=ram_dir,
                               env={"COLO_TEST_CRASH": spec})
        agent = oracle = q = sec2 = None
        pid = None
        try:
            oracle, agent = ct.protect_with_oracle(vm, d, sec.port, PRIMARY)
            self.assertEqual(sec.proc.wait(timeout=120), -signal.SIGKILL,
                             sec.stderr())
            # Only one copy may live on: the primary goes too.
            vm.proc.send_signal(signal.SIGKILL)
            agent.kill()
            agent.wait()
            sec.qmp.close()
            sec.log.close()
            oracle.check()

            sdir2 = os.path.join(d, "sec2")
            os.makedirs(sdir2)
            sec2 = ct.Secondary(sdir2, ram_dir=ram_dir,
                                extra=["-failover", "on",
                                       "-failover-args", args])
            rec = sec2.qmp.cmd("query-colo-status")["x-recovered"]
            want_n = k - 1 if phase == "journal-tmp" else k
            self.assertEqual(rec["checkpoint"], want_n, sec2.stderr())
            self.assertEqual(rec["replayed"], phase != "journal-tmp" and
                             phase != "committed", rec)
            want = oracle.committed(want_n)
            sec2.qmp.cmd("x-colo-lost-heartbeat")
            ev = sec2.qmp.wait_event("X_COLO_FAILOVER", 60)
            self.assertNotIn("error", ev["data"], ev)
            pid = ev["data"]["pid"]
            q = ct.QMP(ev["data"]["qmp"])
            self.assertEqual(q.cmd("query-status")["status"], "paused")
            ram = ct.sha256_file(os.path.join(ram_dir, "pc.ram"))
            self.assertEqual(ram, want["ram"], "resumed RAM is not "
                             "checkpoint %d" % want_n)
            regs = ct.parse_registers(q.cmd(
                "human-monitor-command", **{"command-line":
                                            "info registers"}))
            self.assertEqual(ct.registers_diff(regs, want["regs"]), {})
            with open(os.path.join(ram_dir, "pc.ram"), "rb") as f:
                ok, committed = guest_pages_ok(f.read())
            self.assertTrue(ok, "committed state: %s" % committed)
            q.cmd("cont")
            first, _ = check_guest_runs_on(self, serial, ram_dir, committed,
                                           0x10001, q)
            print("\n%s: folder held checkpoint %d (%s), guest resumed at "
                  "C=%x from C=%x" % (spec, want_n, "replayed %d pages" %
                                      rec["replayed-pages"]
                                      if rec["replayed"] else "as recorded",
                                      first, committed), file=sys.stderr)
        finally:
            if q:
                q.close()
            if agent and agent.poll() is None:
                agent.kill()
                agent.wait()
            if oracle:
                oracle.close()
            ct.kill_pid(pid)
            vm.kill()
            if sec2:
                rc = sec2.quit()
                self.assertEqual(rc, 0, sec2.stderr())
            elif sec.proc.poll() is None:
                sec.proc.kill()
                sec.proc.wait()

    def test_failover_from_recovered_folder(self):
        ct.require_qemu("10.0")
        for point in FAILOVER_POINTS:
            with self.subTest(point=point):
                self.one_point(point)


if __name__ == "__main__":
    ct.main()
