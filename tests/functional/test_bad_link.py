#!/usr/bin/env python3
"""A bad replication link (colotest.BadLink, a proxy of the test's own
between colo-primary and colo-secondary).

The colo-guest in stock QEMU 10.0 is protected over a link with 5 ms of
delay each way and 100 Mb/s, through the test's PrimaryOracle, which
compares the secondary's RAM with the primary's at every checkpoint.

  * The slow link slows checkpoints down; they go on, and each one the
    secondary committed is the primary's RAM of its pause.
  * A stall shorter than colo-primary's x-link-stall-limit (4 s here)
    only delays them.
  * A longer stall ends protection within the limit (and less than twice
    it), with status 2 and an error naming the stalled link; the VM runs
    on (its counter advances, QEMU says running).
  * When the link is back, protection resumes with the command the
    colo-primary@ unit runs again (docs/systemd.rst) into a restarted
    standby, and its checkpoints are checked the same way.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402

STALL_LIMIT_MS = 4000


class BadLinkTest(ct.TempDirTestCase):

    def protect(self, vm, link, name, *extra):
        """colo-primary protecting @vm through @link, via a fresh oracle
        that checks the secondary's RAM (self.sec) at every stop."""
        oracle = ct.PrimaryOracle(vm.qmp_path, vm.ram_path,
                                  os.path.join(self.tmp, name + ".qmp"),
                                  secondary_ram=os.path.join(
                                      self.sec.ram_dir, "pc.ram"))
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        agent = subprocess.Popen(
            [ct.PRIMARY_AGENT, "--qmp", oracle.path, "--ram-file",
             vm.ram_path, "--connect", "tcp:127.0.0.1:%d" % link.port,
             "--qemu-pid", str(vm.proc.pid), "--x-link-stall-limit",
             str(STALL_LIMIT_MS)] + list(extra),
            stdout=log, stderr=subprocess.STDOUT)
        agent.log_path = log.name
        log.close()
        return oracle, agent

    def checkpoints(self):
        return self.sec.qmp.cmd("query-colo-status")["x-checkpoints"]

    def wait_checkpoints(self, n, what, timeout=120):
        return ct.wait_for(lambda: self.checkpoints() >= n, timeout, what)

    def guest_counter(self, vm):
        return ct.guest_counters(vm.serial_path)[-1]

    def test_slow_stalled_and_back(self):
        ct.require_qemu("10.0")
        vm = ct.Qemu("10.0", self.tmp, mem_mb=64, bios=ct.GUEST_BIOS,
                     ram_path=os.path.join(self.tmp, "vm.ram"))
        os.makedirs(os.path.join(self.tmp, "sec1"))
        self.sec = ct.ColoSecondary(os.path.join(self.tmp, "sec1"))
        link = ct.BadLink(self.sec.port, delay_ms=5, rate_bps=100e6)
        oracle = agent = link2 = None
        try:
            ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
            vm.qmp.close()
            oracle, agent = self.protect(vm, link, "primary1")
            self.wait_checkpoints(5, "5 checkpoints over the slow link")

            # a stall under the limit: late checkpoints, no more
            link.stall()
            time.sleep(STALL_LIMIT_MS / 2000.0)
            link.resume()
            n = self.checkpoints()
            self.wait_checkpoints(n + 5, "checkpoints after a short stall")
            self.assertIsNone(agent.poll(), ct.read_text(agent.log_path))

            # a stall over the limit ends protection; the VM runs on
            link.stall()
            t0 = time.monotonic()
            rc = agent.wait(timeout=4 * STALL_LIMIT_MS / 1000.0)
            took = time.monotonic() - t0
            log = ct.read_text(agent.log_path)
            self.assertEqual(rc, 2, log)
            self.assertIn("stalled", log)
            self.assertGreaterEqual(took, STALL_LIMIT_MS / 1000.0 - 0.5, log)
            self.assertLess(took, 2 * STALL_LIMIT_MS / 1000.0 + 1, log)
            oracle.check()
            verified = oracle.verified
            self.assertGreaterEqual(verified, 10)
            oracle.close()
            q = ct.QMP(vm.qmp_path)
            self.assertEqual(q.cmd("query-status")["status"], "running")
            q.close()
            c = self.guest_counter(vm)
            ct.wait_for(lambda: self.guest_counter(vm) > c, 30,
                        "the unprotected guest to go on")

            # the link is back: the standby's session ends (it waits for
            # x-colo-lost-heartbeat, as QEMU does); a restarted standby is
            # protected into again
            link.resume()
            ev = self.sec.qmp.wait_event("COLO_EXIT", 60)
            self.assertEqual(ev["data"]["reason"], "error", ev)
            self.sec.quit()
            os.makedirs(os.path.join(self.tmp, "sec2"))
            self.sec = ct.ColoSecondary(os.path.join(self.tmp, "sec2"))
            link2 = ct.BadLink(self.sec.port, delay_ms=5, rate_bps=100e6)
            oracle, agent = self.protect(vm, link2, "primary2",
                                         "--checkpoints", "5")
            self.assertEqual(agent.wait(timeout=120), 0,
                             ct.read_text(agent.log_path))
            oracle.check()
            self.assertGreaterEqual(oracle.verified, 4)
            print("\nbad link: %d checkpoints checked before a %d ms stall "
                  "ended protection after %.1f s; %d after it was "
                  "restarted" % (verified, STALL_LIMIT_MS, took,
                                 oracle.verified), file=sys.stderr)
        finally:
            if agent and agent.poll() is None:
                agent.kill()
                agent.wait()
            if oracle:
                oracle.close()
            for lk in (link, link2):
                if lk:
                    lk.close()
            vm.kill()
            self.sec.quit()


if __name__ == "__main__":
    ct.main()
