"""Failover, the whole chain: the colo-guest runs in stock QEMU 10.0,
colo-primary checkpoints it into colo-secondary every 100 ms, and at a
random moment the primary QEMU (and in some runs colo-primary too) is
killed with SIGKILL.  colo-secondary fails over by itself
(-heartbeat-timeout) and resumes the VM in a new stock QEMU (-S) from the
last committed checkpoint.

The oracle is the test's own (colotest.PrimaryOracle): colo-primary
reaches QEMU through the test's QMP proxy, which records the SHA-256 of
the VM's RAM and QEMU's "info registers" at every pause.  Before the
resumed VM runs, its RAM and registers must equal those of the pause that
produced the last committed checkpoint: not an older one, not a mix.
Then it runs, and its counter goes on from the committed one."""

import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402
from primary_runs import kernel_has_uffd_wp, ram_vmflags  # noqa: E402
from test_failover import check_guest_runs_on, guest_pages_ok  # noqa: E402

PRIMARY = os.environ.get("COLO_PRIMARY", os.path.join(
    ct.BUILD_ROOT, "tools", "colo-primary"))
RUNS = int(os.environ.get("COLO_FAILOVER_RUNS", "20"))


class FailoverWithPrimary(ct.TempDirTestCase):

    def one_run(self, run, rnd):
        d = os.path.join(self.tmp, "run%d" % run)
        os.makedirs(d)
        vm = ct.Qemu("10.0", d, machine="pc", mem_mb=64, bios=ct.GUEST_BIOS)
        serial = os.path.join(d, "resumed-serial.log")
        args = ("-nodefaults -display none -accel tcg -bios %s "
                "-serial file:%s -S" % (ct.GUEST_BIOS, serial))
        sdir = os.path.join(d, "sec")
        os.makedirs(sdir)
        sec = ct.ColoSecondary(sdir, extra=["-failover-args", args,
                                            "-heartbeat-timeout", "1500"])
        agent = None
        pid = None
        q = None
        oracle = None
        try:
            oracle, agent = ct.protect_with_oracle(vm, d, sec.port, PRIMARY)
            ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")[
                "x-checkpoints"] >= 1, 60, "the first checkpoint")
            if kernel_has_uffd_wp():
                # the kernel's view: QEMU's RAM is write-protected for us
                self.assertIn("uw", ram_vmflags(vm.proc.pid, vm.ram_path))
            time.sleep(rnd.uniform(0.05, 1.5))
            also_agent = run % 3 == 2
            if also_agent:
                agent.send_signal(signal.SIGKILL)
            vm.proc.send_signal(signal.SIGKILL)
            ev = sec.qmp.wait_event("COLO_EXIT", 30)
            self.assertEqual(ev["data"]["reason"], "error")
            n = sec.qmp.cmd("query-colo-status")["x-checkpoints"]
            oracle.check()
            want = oracle.committed(n)
            ev = sec.qmp.wait_event("X_COLO_FAILOVER", 60)
            self.assertNotIn("error", ev["data"], ev)
            self.assertFalse(ev["data"]["running"])
            pid = ev["data"]["pid"]

            # The failover QEMU has loaded the committed state and waits
            # (-S): its RAM and CPU must be the primary's at the pause that
            # produced checkpoint n, recorded by the test itself.
            q = ct.QMP(ev["data"]["qmp"])
            self.assertEqual(q.cmd("query-status")["status"], "paused")
            ram = ct.sha256_file(os.path.join(sec.ram_dir, "pc.ram"))
            older = [i for i, p in enumerate(oracle.pauses)
                     if p["ram"] == ram]
            self.assertEqual(ram, want["ram"],
                             "failover RAM is not checkpoint %d; it matches "
                             "pauses %s of %d" % (n, older,
                                                  len(oracle.pauses)))
            regs = ct.parse_registers(q.cmd(
                "human-monitor-command", **{"command-line":
                                            "info registers"}))
            self.assertEqual(ct.registers_diff(regs, want["regs"]), {})
            with open(os.path.join(sec.ram_dir, "pc.ram"), "rb") as f:
                ok, committed = guest_pages_ok(f.read())
            self.assertTrue(ok, "committed state: %s" % committed)

            q.cmd("cont")
            first, _ = check_guest_runs_on(self, serial, sec.ram_dir,
                                           committed, 0x10001, q)
            return n, committed, first, also_agent
        finally:
            if q:
                q.close()
            if agent and agent.poll() is None:
                agent.kill()
            if agent:
                agent.wait()
            if oracle:
                oracle.close()
            ct.kill_pid(pid)
            vm.kill()
            rc = sec.quit()
            log = sec.stderr()
            subprocess.run(["rm", "-rf", d])
            self.assertEqual(rc, 0, log)

    def test_random_kills(self):
        ct.require_qemu("10.0")
        rnd = random.Random(int(os.environ.get("COLO_FAILOVER_SEED", "11")))
        for run in range(RUNS):
            with self.subTest(run=run):
                n, committed, first, also_agent = self.one_run(run, rnd)
                print("\nrun %2d: killed QEMU%s after %d checkpoints; "
                      "committed C=%x, resumed at C=%x" % (
                          run, " and colo-primary" if also_agent else "",
                          n, committed, first), file=sys.stderr)


if __name__ == "__main__":
    ct.main()
