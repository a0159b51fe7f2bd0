"""colo-primary: a running, unmodified stock QEMU VM (the colo-guest, TCG)
is checkpointed into colo-secondary from outside; after every checkpoint
the secondary's RAM must equal the VM's RAM at the moment of that
checkpoint.  The oracle is the test's (colotest.PrimaryOracle, a QMP proxy
between colo-primary and QEMU): SHA-256 of the VM's RAM file while QEMU is
stopped, compared with the secondary's RAM file once the checkpoint has
been acknowledged and before the next pause.  And the bad
conditions: QEMU gone, secondary gone or unreachable, QMP errors, a RAM
file of the wrong size: a clear message, the documented exit status, and
the VM never left stopped."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402
from primary_runs import (PRIMARY, PrimaryRuns, kvm_works,  # noqa: E402
                          tracking_of)


class ColoPrimary(PrimaryRuns, ct.TempDirTestCase):

    def run_e2e(self, version, machine, accel="tcg"):
        """50 checkpoints with the default tracking (auto: uffd-wp where
        the kernel has it), each checked by the oracle."""
        vm = self.start_vm(version, machine, accel=accel)
        sdir = os.path.join(self.tmp, "sec")
        os.makedirs(sdir)
        sec = ct.ColoSecondary(sdir)
        try:
            out = self.verified_run(vm, sec, 50, "--x-checkpoint-delay",
                                    "100", "--qemu-pid", str(vm.proc.pid))
            self.assertIn("done: 50 checkpoints", out)
            self.assertEqual(self.vm_running(vm), "running")
            method, why = self.expect_uffd_wp(out)
            print("\nQEMU %s, %s, dirty tracking %s%s\n%s" % (
                version, accel.upper(), method, " (%s)" % why if why else "",
                out.strip().splitlines()[-1]), file=sys.stderr)
        finally:
            vm.kill()
            sec.quit()

    def test_e2e_qemu100(self):
        self.run_e2e("10.0", "pc")

    def test_e2e_qemu72(self):
        self.run_e2e("7.2", "pc")

    def run_e2e_kvm(self, version):
        """The same under KVM where /dev/kvm works; a machine without it
        ran the TCG cases above (which is not a skip: the log says so)."""
        if not kvm_works():
            print("\nKVM: /dev/kvm does not work on this machine; the TCG "
                  "case of QEMU %s ran" % version, file=sys.stderr)
            return
        self.run_e2e(version, "pc", accel="kvm")

    def test_e2e_kvm_qemu100(self):
        self.run_e2e_kvm("10.0")

    def test_e2e_kvm_qemu72(self):
        self.run_e2e_kvm("7.2")

    def test_stock_qemu_secondary(self):
        """The same checkpoints into stock QEMU 10.0 as the COLO secondary
        (-incoming, x-colo): it takes the initial stream and every
        checkpoint (VMSTATE_LOADED), and its VM runs as the secondary."""
        vm = self.start_vm()
        qdir = os.path.join(self.tmp, "qemu-secondary")
        os.makedirs(qdir)
        svm = ct.Qemu("10.0", qdir, machine="pc", mem_mb=64,
                      bios=ct.GUEST_BIOS, incoming="defer")
        try:
            svm.qmp.set_caps(**{"x-colo": True, "events": True})
            svm.qmp.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
            port = svm.qmp.cmd("query-migrate")["socket-address"][0]["port"]
            p = self.agent(vm, int(port), "--checkpoints", "20", "--xbzrle")
            out = p.stdout.decode()
            self.assertEqual(p.returncode, 0, p.stderr.decode() + out +
                             svm.stderr())
            self.assertEqual(out.count("dirty pages"), 20, out)
            self.assertEqual(svm.qmp.cmd("query-colo-status")["mode"],
                             "secondary")
            self.assertEqual(svm.qmp.cmd("query-status")["status"],
                             "running")
            self.assertEqual(self.vm_running(vm), "running")
        finally:
            vm.kill()
            svm.qmp.close()
            svm.kill()

    def test_xbzrle_e2e(self):
        vm = self.start_vm()
        sdir = os.path.join(self.tmp, "sec")
        os.makedirs(sdir)
        sec = ct.ColoSecondary(sdir)
        try:
            # digests of every page: the method without a tracker
            out = self.verified_run(vm, sec, 20, "--xbzrle",
                                    "--dirty-tracking", "digest")
            self.assertEqual(tracking_of(out)[0], "digest")
            self.assertEqual(self.vm_running(vm), "running")
        finally:
            vm.kill()
            sec.quit()

    # -- the agent's own QMP socket -------------------------------------
    def test_qmp_monitor(self):
        """QEMU's vocabulary on colo-primary's socket: capabilities,
        parameters, migrate, query-migrate figures, an immediate
        checkpoint on a new x-checkpoint-delay, events, failover by
        x-colo-lost-heartbeat, a second session, quit."""
        vm = self.start_vm()
        secs = []
        for i in range(2):
            d = os.path.join(self.tmp, "sec%d" % i)
            os.makedirs(d)
            secs.append(ct.ColoSecondary(d))
        try:
            proc, q = self.agent_with_monitor(vm)
            names = {c["name"] for c in q.cmd("query-commands")}
            for want in ("migrate", "query-migrate", "query-colo-status",
                         "x-colo-lost-heartbeat", "migrate-set-parameters"):
                self.assertIn(want, names)
            self.assertEqual(q.cmd("query-migrate"), {})
            uri = "tcp:127.0.0.1:%d" % secs[0].port
            r = q.cmd_raw("migrate", uri=uri)
            self.assertIn("x-colo", r["error"]["desc"])
            r = q.cmd_raw("migrate-set-capabilities", capabilities=[
                {"capability": "postcopy-ram", "state": True}])
            self.assertIn("not supported", r["error"]["desc"])
            r = q.cmd_raw("x-colo-lost-heartbeat")
            self.assertIn("not in COLO", r["error"]["desc"])
            r = q.cmd_raw("migrate-set-parameters",
                          **{"max-bandwidth": 1 << 20})
            self.assertIn("not used by colo-primary", r["error"]["desc"])
            q.set_caps(**{"x-colo": True, "xbzrle": True, "events": True})
            q.cmd("migrate-set-parameters", **{"x-checkpoint-delay": 60000})
            self.assertEqual(q.cmd("query-migrate-parameters")[
                "x-checkpoint-delay"], 60000)
            # the output trigger's: on, with its defaults, and settable
            caps = {c["capability"]: c["state"]
                    for c in q.cmd("query-migrate-capabilities")}
            self.assertIs(caps["x-colo-output-trigger"], True)
            params = q.cmd("query-migrate-parameters")
            self.assertEqual((params["x-checkpoint-min-gap"],
                              params["x-checkpoint-coalesce"],
                              params["x-checkpoint-ack-delay"]),
                             (0, 500, 5000))
            q.cmd("migrate-set-parameters", **{"x-checkpoint-min-gap": 7})
            self.assertEqual(q.cmd("query-migrate-parameters")[
                "x-checkpoint-min-gap"], 7)
            # colo-secondary neither shows nor takes them
            sq = secs[1].qmp
            self.assertNotIn("x-checkpoint-min-gap",
                             sq.cmd("query-migrate-parameters"))
            self.assertNotIn("x-colo-output-trigger",
                             {c["capability"] for c in
                              sq.cmd("query-migrate-capabilities")})
            r = sq.cmd_raw("migrate-set-parameters",
                           **{"x-checkpoint-coalesce": 1})
            self.assertIn("colo-primary's", r["error"]["desc"])

            q.cmd("migrate", uri=uri)
            q.wait_event("MIGRATION", 60,
                         lambda e: e["data"]["status"] == "colo")
            self.assertEqual(q.cmd("query-colo-status")["mode"], "primary")
            r = q.cmd_raw("migrate", uri=uri)
            self.assertIn("in progress", r["error"]["desc"])
            # a new delay checkpoints at once (the old one is a minute)
            q.cmd("migrate-set-parameters", **{"x-checkpoint-delay": 50000})
            ev = q.wait_event("X_COLO_CHECKPOINT", 20)
            self.assertEqual(ev["data"]["checkpoint"], 1)
            self.assertEqual(ev["data"]["trigger"], "request")
            # and on demand
            q.cmd("x-colo-checkpoint")
            ev = q.wait_event("X_COLO_CHECKPOINT", 20)
            self.assertEqual(ev["data"]["checkpoint"], 2)
            self.assertEqual(ev["data"]["trigger"], "request")
            self.assertEqual(q.cmd("query-migrate")[
                "x-colo-checkpoint-triggers"]["request"], 2)
            q.cmd("migrate-set-parameters", **{"x-checkpoint-delay": 50})
            ct.wait_for(lambda: q.cmd("query-migrate")[
                "x-colo-checkpoints"] >= 10, 60, "10 checkpoints")
            info = q.cmd("query-migrate")
            self.assertEqual(info["status"], "colo")
            self.assertGreater(info["x-colo-last-pause-us"], 0)
            self.assertGreater(info["x-colo-last-dirty-pages"], 0)
            self.assertEqual(info["x-colo-last-dirty-bytes"],
                             info["x-colo-last-dirty-pages"] * 4096)
            self.assertGreater(info["x-colo-pause-median-us"], 0)
            self.assertGreater(info["ram"]["transferred"], 4 << 20)
            self.assertGreater(info["xbzrle-cache"]["pages"], 0)

            # failover on the primary's side: it goes on alone
            q.cmd("x-colo-lost-heartbeat")
            ev = q.wait_event("COLO_EXIT", 30)
            self.assertEqual(ev["data"], {"mode": "primary",
                                          "reason": "request"})
            q.wait_event("MIGRATION", 30,
                         lambda e: e["data"]["status"] == "completed")
            st = q.cmd("query-colo-status")
            self.assertEqual((st["mode"], st["last-mode"], st["reason"]),
                             ("none", "primary", "request"))
            self.guest_runs_on(vm)
            n = q.cmd("query-migrate")["x-colo-checkpoints"]
            self.assertIn(secs[0].qmp.cmd("query-colo-status")[
                "x-checkpoints"], (n, n - 1))

            # a second session, to another secondary
            q.cmd("migrate", uri="tcp:127.0.0.1:%d" % secs[1].port)
            ct.wait_for(lambda: q.cmd("query-migrate")[
                "x-colo-checkpoints"] >= 3, 60, "a second session")
            self.quit_agent(proc, q)
        finally:
            vm.kill()
            for s in secs:
                s.quit()

    def test_monitor_secondary_dies(self):
        """With a monitor, a lost secondary fails the session (events,
        query-migrate's error-desc), the VM runs on, the agent stays."""
        vm = self.start_vm()
        sdir = os.path.join(self.tmp, "sec")
        os.makedirs(sdir)
        sec = ct.ColoSecondary(sdir)
        try:
            proc, q = self.agent_with_monitor(vm, "--x-checkpoint-delay", "50")
            q.set_caps(**{"x-colo": True, "events": True})
            q.cmd("migrate", uri="tcp:127.0.0.1:%d" % sec.port)
            ct.wait_for(lambda: q.cmd("query-migrate").get(
                "x-colo-checkpoints", 0) >= 3, 60, "checkpoints")
            sec.proc.kill()
            ev = q.wait_event("COLO_EXIT", 30)
            self.assertEqual(ev["data"], {"mode": "primary",
                                          "reason": "error"})
            q.wait_event("MIGRATION", 30,
                         lambda e: e["data"]["status"] == "failed")
            info = q.cmd("query-migrate")
            self.assertEqual(info["status"], "failed")
            self.assertIn("secondary", info["error-desc"])
            self.guest_runs_on(vm)
            self.assertIsNone(proc.poll())
            self.quit_agent(proc, q)
        finally:
            vm.kill()
            sec.quit()

    def test_vm_paused_elsewhere_stays_paused(self):
        """A VM that another monitor (or a guest error) paused is
        checkpointed as it is and never continued by colo-primary."""
        ct.require_qemu("10.0")
        other = os.path.join(self.tmp, "other.qmp")
        vm = ct.Qemu("10.0", self.tmp, mem_mb=64, bios=ct.GUEST_BIOS,
                     extra=["-qmp", "unix:%s,server=on,wait=off" % other])
        sdir = os.path.join(self.tmp, "sec")
        os.makedirs(sdir)
        sec = ct.ColoSecondary(sdir)
        try:
            ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
            vm.qmp.close()
            q = ct.QMP(other)
            self.addCleanup(q.close)
            q.cmd("stop")
            p = self.agent(vm, sec.port, "--checkpoints", "5")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sec.qmp.cmd("query-colo-status")[
                "x-checkpoints"], 5)
            # paused all along: the secondary holds exactly its RAM
            self.assertEqual(
                ct.sha256_file(os.path.join(sec.ram_dir, "pc.ram")),
                ct.sha256_file(vm.ram_path))
            # (QEMU calls a stopped VM it migrated "postmigrate")
            self.assertIn(q.cmd("query-status")["status"],
                          ("paused", "postmigrate"))
            q.cmd("cont")
            self.assertEqual(q.cmd("query-status")["status"], "running")
        finally:
            vm.kill()
            sec.quit()

    # -- bad conditions ---------------------------------------------------
    def test_secondary_unreachable(self):
        vm = self.start_vm()
        try:
            p = self.agent(vm, 1)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(b"unreachable", p.stderr)
            self.assertEqual(self.vm_running(vm), "running")
        finally:
            vm.kill()

    def kill_during_colo(self, victim):
        """colo-primary checkpointing into colo-secondary every 50 ms;
        after 3 checkpoints @victim ("secondary" or "qemu") is killed.
        Returns the agent's exit status and stderr, and the VM's state
        (None if QEMU is gone)."""
        vm = self.start_vm()
        sdir = os.path.join(self.tmp, "sec")
        os.makedirs(sdir)
        sec = ct.ColoSecondary(sdir)
        try:
            proc = subprocess.Popen(
                [PRIMARY, "--qmp", vm.qmp_path, "--ram-file", vm.ram_path,
                 "--connect", "tcp:127.0.0.1:%d" % sec.port,
                 "--x-checkpoint-delay", "50"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")[
                "x-checkpoints"] >= 3, 60, "checkpoints")
            (sec if victim == "secondary" else vm).proc.kill()
            _out, err = proc.communicate(timeout=60)
            state = self.vm_running(vm) if victim == "secondary" else None
            return proc.returncode, err, state
        finally:
            vm.kill()
            sec.quit()

    def test_secondary_dies(self):
        status, err, state = self.kill_during_colo("secondary")
        self.assertEqual(status, 2, err)
        self.assertIn(b"secondary", err)
        self.assertEqual(state, "running")

    def test_qemu_dies(self):
        status, err, _state = self.kill_during_colo("qemu")
        self.assertEqual(status, 3, err)
        self.assertIn(b"QMP", err)

    def test_qmp_answers_errors(self):
        # colo-secondary's QMP socket speaks QMP but has no "stop"
        vm = self.start_vm()
        sdir = os.path.join(self.tmp, "sec")
        os.makedirs(sdir)
        sec = ct.ColoSecondary(sdir)
        other = ct.Secondary(os.path.join(self.tmp), name="not-a-vm")
        try:
            other.qmp.close()
            p = subprocess.run(
                [PRIMARY, "--qmp", other.qmp_path, "--ram-file", vm.ram_path,
                 "--connect", "tcp:127.0.0.1:%d" % sec.port],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, 3, p.stderr)
            self.assertIn(b"QMP", p.stderr)
            self.assertEqual(self.vm_running(vm), "running")
        finally:
            vm.kill()
            sec.quit()
            other.proc.kill()

    def test_ram_file_wrong_size(self):
        vm = self.start_vm()
        sdir = os.path.join(self.tmp, "sec")
        os.makedirs(sdir)
        sec = ct.ColoSecondary(sdir)
        wrong = os.path.join(self.tmp, "wrong.ram")
        with open(wrong, "wb") as f:
            f.truncate(32 << 20)
        try:
            p = subprocess.run(
                [PRIMARY, "--qmp", vm.qmp_path, "--ram-file", wrong,
                 "--connect", "tcp:127.0.0.1:%d" % sec.port],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, 3, p.stderr)
            self.assertIn(b"pc.ram", p.stderr)
            self.assertEqual(self.vm_running(vm), "running")
        finally:
            vm.kill()
            sec.quit()


if __name__ == "__main__":
    ct.main()
