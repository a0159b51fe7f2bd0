"""The real Linux guest protected end to end: stock QEMU in a namespace,
colo-primary, colo-secondary, its services reachable through the held
network."""

import os
import subprocess
import sys

from .base import kill_pid, wait_for
from .guest import require_linux_guest
from .paths import NETCLIENT, PRIMARY_AGENT
from .procs import ColoSecondary, DiskSecondary, Qemu
from .qmp import QMP


GUEST_IP = "10.77.0.10"
GUEST_MAC = "52:54:00:c0:10:20"


class ProtectedLinuxGuest:
    """The whole picture of the network tests, the benchmark and the
    demo, inside network namespace @ns (a NetNs): the Linux guest's service
    workload in stock QEMU 10.0 on tap0, colo-secondary whose failover QEMU
    gets the same NIC (same MAC) on tap1 of the same bridge, and
    colo-primary protecting the VM with @agent_args.  With @failover_net
    False the failover QEMU has no NIC; with @protect False there is only
    the VM."""

    def __init__(self, workdir, ns, agent_args=(), mem_mb=256,
                 heartbeat_ms=1500, failover_net=True, qemu_extra=(),
                 queues=1, wait_checkpoint=True, protect=True, disk_mb=0,
                 run="service", append=""):
        kernel, initrd = require_linux_guest()
        self.workdir = workdir
        self.ns = ns
        self.vm = self.sec = self.agent = None
        self.failover_pid = None
        disk_vm, disk_dev, disk_agent = [], [], []
        if disk_mb:
            # the VM's disk (virtio-blk on node disk0), and the standby's
            # image of it, which the mirror fills
            self.disk_path = os.path.join(workdir, "disk.img")
            self.standby_disk_path = os.path.join(workdir, "standby-disk.img")
            for path in (self.disk_path, self.standby_disk_path):
                with open(path, "wb") as f:
                    f.truncate(disk_mb << 20)
            disk_vm = ["-blockdev", "driver=raw,node-name=disk0,file.driver="
                       "file,file.filename=" + self.disk_path]
            disk_dev = ["-device", "virtio-blk-pci,drive=disk0"]
        ns.add_tap("tap0", multi_queue=queues > 1)
        ns.add_tap("tap1")
        mq = ",queues=%d" % queues if queues > 1 else ""
        mq_dev = ",mq=on,vectors=%d" % (2 * queues + 2) if queues > 1 else ""
        try:
            self.vm = Qemu("10.0", workdir, mem_mb=mem_mb, prefix=ns.prefix(),
                           extra=[
                "-kernel", kernel, "-initrd", initrd,
                "-append", "console=ttyS0 quiet colo.run=%s "
                           "colo.ip=%s/24 %s" % (run, GUEST_IP, append),
                "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"
                           + mq,
                "-device", "virtio-net-pci,netdev=n0,mac=" + GUEST_MAC + mq_dev]
                + disk_vm + disk_dev + list(qemu_extra))
            ready = "serving on port 7777" if run == "service" else \
                "DISK ok" if run == "disk" else "colo-guest: up"
            wait_for(lambda: ready in self.vm.serial(), 120,
                     "the guest's workload")
            if not protect:
                return
            self.vm.qmp.close()
            self.failover_serial = os.path.join(workdir, "failover.serial")
            args = ("-nodefaults -display none -accel tcg -kernel %s "
                    "-initrd %s -serial file:%s" % (kernel, initrd,
                                                    self.failover_serial))
            if failover_net:
                args += (" -netdev tap,id=n0,ifname=tap1,script=no,"
                         "downscript=no -device virtio-net-pci,netdev=n0,"
                         "mac=" + GUEST_MAC)
            if disk_mb:
                args += " " + " ".join(disk_dev)
            sdir = os.path.join(workdir, "sec")
            os.makedirs(sdir, exist_ok=True)
            sec_extra = ["-failover-args", args,
                         "-heartbeat-timeout", str(heartbeat_ms)]
            if disk_mb:
                self.sec = DiskSecondary(sdir, self.standby_disk_path,
                                         prefix=ns.prefix(), extra=sec_extra)
                disk_agent = ["--disk", "disk0=" + self.sec.uri]
            else:
                self.sec = ColoSecondary(sdir, prefix=ns.prefix(),
                                         extra=sec_extra)
            self.monitor_path = os.path.join(workdir, "colo-primary.qmp")
            self.agent_log_path = os.path.join(workdir, "colo-primary.log")
            self.agent_log = open(self.agent_log_path, "wb")
            self.agent = subprocess.Popen(
                ns.prefix() + [PRIMARY_AGENT, "--qmp", self.vm.qmp_path,
                               "--ram-file", self.vm.ram_path,
                               "--connect", "tcp:127.0.0.1:%d" % self.sec.port,
                               "--monitor", "unix:%s,server=on,wait=off"
                               % self.monitor_path] + disk_agent
                + list(agent_args),
                stdout=self.agent_log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # its work folder in ours, gone with it even after a
                # SIGKILL (the benchmark and the demo are no TestCase)
                env=dict(os.environ, COLO_PRIMARY_RUNDIR=workdir))
            if not wait_checkpoint:
                return
            wait_for(lambda: self.sec.qmp.cmd("query-colo-status")[
                "x-checkpoints"] >= 1 or self.agent.poll() is not None,
                120, "the first checkpoint")
            if self.agent.poll() is not None:
                raise RuntimeError("colo-primary ended: " + self.agent_log_text())
        except Exception:
            self.close()
            raise

    def agent_log_text(self):
        self.agent_log.flush()
        with open(self.agent_log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def agent_query(self, cmd="query-migrate"):
        q = QMP(self.monitor_path)
        try:
            return q.cmd(cmd)
        finally:
            q.close()

    def client(self, *args):
        """netclient.py @args inside the namespace, stdout piped."""
        return subprocess.Popen(self.ns.prefix() + [sys.executable, NETCLIENT]
                                + [str(a) for a in args],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def wait_failover(self, timeout=60):
        ev = self.sec.qmp.wait_event("X_COLO_FAILOVER", timeout)
        self.failover_pid = ev["data"].get("pid")
        return ev

    def close(self):
        if self.agent:
            if self.agent.poll() is None:
                self.agent.kill()
            self.agent.wait()
            self.agent_log.close()
        if self.sec and not self.failover_pid:
            # a failover nobody waited for (the heartbeat timed out)
            try:
                self.failover_pid = self.sec.qmp.cmd(
                    "query-colo-status").get("x-failover-pid")
            except Exception:
                pass
        kill_pid(self.failover_pid)
        if self.vm:
            self.vm.qmp.close()
            self.vm.kill()
        rc = self.sec.quit() if self.sec else 0
        self.sec = None
        return rc
