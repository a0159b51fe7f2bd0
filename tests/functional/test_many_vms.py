#!/usr/bin/env python3
"""Many VMs on one standby (part 5 of issue 29): one VM fails over while
the others stay protected.

Three colo-guests (stock QEMU 10.0, 64 MiB, TCG) run on this host, each
protected by its own colo-primary into its own colo-secondary on the same
host, each through the test's PrimaryOracle (the primary's RAM hashed at
every pause; at every stop the standby's RAM file must be the pause of
its last checkpoint).  The second VM's QEMU is killed: its standby fails
over into stock QEMU from its last committed checkpoint (paused with -S:
its RAM is that checkpoint, as the oracle hashed it) and the guest runs
on.  Meanwhile, and after, the other two go on checkpointing, each one
checked, and their standbys never see the failover (their RAM folders
and QMP are theirs alone).  bench/density.py measures the same layout at
1, 4 and 8 VMs.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402

VMS = 3
GUEST_MB = 64


class ManyVms(ct.TempDirTestCase):

    def start(self, i):
        d = os.path.join(self.tmp, "vm%d" % i)
        os.makedirs(os.path.join(d, "sec"))
        vm = ct.Qemu("10.0", d, mem_mb=GUEST_MB, bios=ct.GUEST_BIOS,
                     ram_path=os.path.join(d, "vm.ram"))
        self.addCleanup(vm.kill)
        serial = os.path.join(d, "failover-serial.log")
        sec = ct.ColoSecondary(
            os.path.join(d, "sec"), name="vm%d" % i,
            extra=["-failover-args",
                   "-nodefaults -display none -accel tcg -bios %s "
                   "-serial file:%s -S" % (ct.GUEST_BIOS, serial)])
        self.addCleanup(sec.quit)
        sec.failover_serial = serial
        return vm, sec

    def protect(self, i, vm, sec):
        d = os.path.join(self.tmp, "vm%d" % i)
        oracle = ct.PrimaryOracle(
            vm.qmp_path, vm.ram_path, os.path.join(d, "oracle.qmp"),
            secondary_ram=os.path.join(sec.ram_dir, "pc.ram"))
        self.addCleanup(oracle.close)
        agent = ct.start_logged(self, [
            ct.PRIMARY_AGENT, "--qmp", oracle.path, "--ram-file",
            vm.ram_path, "--connect", "tcp:127.0.0.1:%d" % sec.port,
            "--qemu-pid", str(vm.proc.pid), "--x-checkpoint-delay", "200"],
            os.path.join(d, "primary.log"))
        return oracle, agent

    @staticmethod
    def checkpoints(sec):
        return sec.qmp.cmd("query-colo-status")["x-checkpoints"]

    def test_one_fails_over_the_others_stay_protected(self):
        ct.require_qemu("10.0")
        vms = [self.start(i) for i in range(VMS)]
        for vm, _ in vms:
            ct.wait_for(lambda: "C=" in vm.serial(), 120, "the guests")
            vm.qmp.close()
        runs = [self.protect(i, vm, sec) for i, (vm, sec) in enumerate(vms)]
        for _, sec in vms:
            ct.wait_for(lambda: self.checkpoints(sec) >= 5, 180,
                        "5 checkpoints of every VM")

        # the second VM's QEMU dies: its standby takes over
        vm, sec = vms[1]
        oracle, agent = runs[1]
        vm.proc.send_signal(signal.SIGKILL)
        vm.proc.wait()
        self.assertEqual(agent.wait(timeout=60), 3,
                         ct.read_text(agent.log_path))
        ev = sec.qmp.wait_event("COLO_EXIT", 60)
        self.assertEqual(ev["data"]["reason"], "error")
        n = self.checkpoints(sec)
        others = {i: self.checkpoints(vms[i][1]) for i in (0, 2)}
        sec.qmp.cmd("x-colo-lost-heartbeat")
        ev = sec.qmp.wait_event("X_COLO_FAILOVER", 60)
        self.assertNotIn("error", ev["data"], ev)
        pid = ev["data"]["pid"]
        self.addCleanup(ct.kill_pid, pid)
        fq = ct.QMP(ev["data"]["qmp"])
        self.addCleanup(fq.close)
        self.assertFalse(fq.cmd("query-status")["running"])
        self.assertEqual(ct.sha256_file(os.path.join(sec.ram_dir, "pc.ram")),
                         oracle.committed(n)["ram"],
                         "the failed-over VM is not checkpoint %d" % n)
        oracle.check()
        fq.cmd("cont")
        before = len(ct.guest_counters(sec.failover_serial))
        ct.wait_for(lambda: len(ct.guest_counters(sec.failover_serial)) >
                    before + 2, 60, "the failed-over guest running on")

        # the others went on through all of it, every checkpoint checked
        for i in (0, 2):
            s = vms[i][1]
            ct.wait_for(lambda: self.checkpoints(s) >= others[i] + 5, 120,
                        "VM %d's checkpoints after the failover" % i)
            o, a = runs[i]
            self.assertIsNone(a.poll(), ct.read_text(a.log_path))
            st = s.qmp.cmd("query-colo-status")
            self.assertEqual(st["mode"], "secondary", st)
            o.check()
        verified = [runs[i][0].verified for i in (0, 2)]
        for v in verified:
            self.assertGreaterEqual(v, 10)
        print("\nmany VMs: VM 1 failed over from checkpoint %d; VMs 0 and "
              "2 went on, %s checkpoints checked" % (n, verified),
              file=sys.stderr)


if __name__ == "__main__":
    ct.main()
