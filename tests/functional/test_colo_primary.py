"""colo-primary (work in progress of the colo-primary issue): a running,
unmodified stock QEMU VM (the colo-guest, TCG) is checkpointed into
colo-secondary from outside; after every checkpoint the secondary's RAM
must equal the VM's RAM at the moment of that checkpoint (the agent
compares per-page hash digests: --verify-secondary).  And the bad
conditions: QEMU gone, secondary gone or unreachable, QMP errors, a RAM
file of the wrong size: a clear message, the documented exit status, and
the VM never left stopped."""

import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402

PRIMARY = os.environ.get("COLO_PRIMARY", os.path.join(
    ct.BUILD_ROOT, "tools", "colo-primary"))


class ColoPrimary(ct.TempDirTestCase):

    def start_vm(self, version="10.0", machine="pc"):
        if not ct.qemu_available(version):
            self.skipTest("QEMU %s is not installed" % version)
        vm = ct.Qemu(version, self.tmp, machine=machine, mem_mb=64,
                     bios=ct.GUEST_BIOS)
        ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
        vm.qmp.close()      # the agent needs QEMU's only QMP connection
        return vm

    def agent(self, vm, port, *extra, timeout=300):
        argv = [PRIMARY, "--qmp", vm.qmp_path, "--ram-file", vm.ram_path,
                "--connect", "tcp:127.0.0.1:%d" % port] + list(extra)
        return subprocess.run(argv, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)

    def vm_running(self, vm):
        q = ct.QMP(vm.qmp_path)
        try:
            return q.cmd("query-status")["status"]
        finally:
            q.close()

    def run_e2e(self, version, machine):
        vm = self.start_vm(version, machine)
        sdir = os.path.join(self.tmp, "sec")
        os.makedirs(sdir)
        sec = ct.ColoSecondary(sdir)
        try:
            p = self.agent(vm, sec.port, "--checkpoints", "50",
                           "--x-checkpoint-delay", "100",
                           "--verify-secondary", sec.ram_dir)
            out = p.stdout.decode()
            self.assertEqual(p.returncode, 0, p.stderr.decode() + out)
            self.assertEqual(out.count("secondary verified"), 51, out)
            self.assertIn("initial sync", out)
            self.assertIn("done: 50 checkpoints", out)
            self.assertEqual(sec.qmp.cmd("query-colo-status")[
                "x-checkpoints"], 50)
            self.assertEqual(self.vm_running(vm), "running")
            print("\n" + out.strip().splitlines()[-1], file=sys.stderr)
        finally:
            vm.kill()
            sec.quit()

    def test_e2e_qemu100(self):
        self.run_e2e("10.0", "pc")

    def test_e2e_qemu72(self):
        self.run_e2e("7.2", "pc")

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

    def test_secondary_dies(self):
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
            sec.proc.kill()
            _out, err = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 2, err)
            self.assertIn(b"secondary", err)
            self.assertEqual(self.vm_running(vm), "running")
        finally:
            vm.kill()
            sec.quit()

    def test_qemu_dies(self):
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
            vm.proc.kill()
            _out, err = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 3, err)
            self.assertIn(b"QMP", err)
        finally:
            vm.kill()
            sec.quit()

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
    unittest.main(verbosity=2)
