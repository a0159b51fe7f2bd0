"""What the colo-primary tests share: a colo-guest VM under stock QEMU,
colo-primary run against it, and the verified run (colo-primary through
the test's own oracles, colotest.PrimaryOracle and CommitWatch)."""

import os
import re
import subprocess

import colotest as ct

PRIMARY = os.environ.get("COLO_PRIMARY", os.path.join(
    ct.BUILD_ROOT, "tools", "colo-primary"))


def kernel_has_uffd_wp():
    """Linux 6.7 brought what uffd-wp needs (PAGEMAP_SCAN, asynchronous
    userfaultfd write protection); Debian 12's own kernel (6.1) has
    neither, this development host's (6.18) both."""
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (6, 7)


def kvm_works():
    """Whether /dev/kvm opens and answers KVM_GET_API_VERSION (12)."""
    import fcntl
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, 0xAE00) == 12
    except OSError:
        return False
    finally:
        os.close(fd)


def ram_vmflags(pid, ram_path):
    """The kernel's flags of QEMU's mapping of the RAM file (smaps
    VmFlags): "uw" while it is registered for userfaultfd write
    protection."""
    flags, in_ram = None, False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            if line[:1] in "0123456789abcdef" and "-" in line.split()[0]:
                in_ram = line.rstrip().endswith(ram_path)
            elif in_ram and line.startswith("VmFlags:"):
                flags = set(line.split()[1:])
    return flags


def tracking_of(out):
    """colo-primary's "dirty tracking: METHOD (refusals)" line, split."""
    m = re.search(r"^dirty tracking: (\S+)(?: \((.*)\))?$", out, re.M)
    if not m:
        raise AssertionError("no dirty tracking line in:\n" + out[-2000:])
    return m.group(1), m.group(2) or ""


class PrimaryRuns:
    """A mixin for ct.TempDirTestCase."""

    def start_vm(self, version="10.0", machine="pc", **kw):
        ct.require_qemu(version)
        vm = ct.Qemu(version, self.tmp, machine=machine, mem_mb=64,
                     bios=ct.GUEST_BIOS, **kw)
        ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
        vm.qmp.close()      # the agent needs QEMU's only QMP connection
        return vm

    def agent(self, vm, port, *extra, timeout=300, qmp=None, env=None):
        argv = [PRIMARY, "--qmp", qmp or vm.qmp_path, "--ram-file",
                vm.ram_path, "--connect", "tcp:127.0.0.1:%d" % port] + \
            list(extra)
        return subprocess.run(argv, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout,
                              env=dict(os.environ, **(env or {})))

    def verified_run(self, vm, sec, checkpoints, *extra, env=None):
        """colo-primary through the test's oracles: the secondary's RAM is
        checked against the primary's after the initial sync and after
        every one of @checkpoints checkpoints, twice: at the moment the
        secondary acknowledges the commit (CommitWatch holds the message
        meanwhile) and again before the next pause (PrimaryOracle).
        Returns colo-primary's stdout; its stderr is in .agent_stderr."""
        oracle = ct.PrimaryOracle(
            vm.qmp_path, vm.ram_path, os.path.join(self.tmp, "oracle.qmp"),
            secondary_ram=os.path.join(sec.ram_dir, "pc.ram"))
        watch = ct.CommitWatch(sec.port, oracle.verify_secondary)
        try:
            p = self.agent(vm, watch.port, "--checkpoints", str(checkpoints),
                           *extra, qmp=oracle.path, env=env)
            out = p.stdout.decode()
            self.agent_stderr = p.stderr.decode()
            self.assertEqual(p.returncode, 0, p.stderr.decode() + out)
            oracle.check()
            watch.check()
            self.assertEqual(watch.commits, checkpoints + 1)
            # the last checkpoint: the agent has ended, the secondary idles
            n = sec.qmp.cmd("query-colo-status")["x-checkpoints"]
            self.assertEqual(n, checkpoints)
            oracle.verify_secondary(n)
            self.assertEqual(oracle.verified, 2 * (checkpoints + 1))
            self.assertEqual(len(oracle.pauses),
                             checkpoints + oracle.INITIAL_PAUSES)
            return out
        finally:
            oracle.close()

    def expect_uffd_wp(self, out):
        """Where the kernel has what it needs, the run used uffd-wp;
        elsewhere digests, saying why (and the log says which ran)."""
        method, why = tracking_of(out)
        if kernel_has_uffd_wp():
            self.assertEqual(method, "uffd-wp", why)
        else:
            self.assertEqual(method, "digest")
            self.assertIn("uffd-wp: ", why)
        return method, why

    def agent_with_monitor(self, vm, *extra):
        """colo-primary with its own QMP socket; stopped at cleanup."""
        mon_path = os.path.join(self.tmp, "agent.qmp")
        proc = subprocess.Popen(
            [PRIMARY, "--qmp", vm.qmp_path, "--ram-file", vm.ram_path,
             "--monitor", "unix:%s,server=on,wait=off" % mon_path, "-q"] +
            list(extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def stop():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        self.addCleanup(stop)
        q = ct.QMP(mon_path)
        self.addCleanup(q.close)
        return proc, q

    def quit_agent(self, proc, q):
        q.cmd("quit")
        proc.wait(timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr.read())

    def guest_runs_on(self, vm):
        before = len(ct.guest_counters(vm.serial_path))
        ct.wait_for(lambda: len(ct.guest_counters(vm.serial_path)) >
                    before + 2, 60, "the guest running on")

    def vm_running(self, vm):
        return ct.qemu_status(vm.qmp_path)
