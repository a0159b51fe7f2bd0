"""Stock QEMU (10.0 from the system, 7.2 unpacked in the build tree) and
colo-secondary as logged child processes."""

import os
import shutil
import socket
import subprocess
import unittest

from . import paths
from .paths import QEMU72_ROOT
from .qmp import QMP


class LoggedProcess:
    """A child process whose stdout and stderr go to self.log_path."""

    def stderr(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


class Qemu(LoggedProcess):
    """A stock qemu-system-x86_64 with its RAM in a shared file."""

    VERSIONS = ("10.0", "7.2")

    def __init__(self, version, workdir, machine="pc", mem_mb=64,
                 bios=None, incoming=None, ram_path=None, extra=(),
                 accel="tcg", prefix=()):
        self.version = version
        self.workdir = workdir
        self.qmp_path = os.path.join(workdir, "qemu-%s.qmp" % version)
        self.ram_path = ram_path or os.path.join(
            "/dev/shm", "colo-test-%d-%s" % (os.getpid(),
                                             os.path.basename(workdir)))
        self.serial_path = os.path.join(workdir, "serial-%s.log" % version)
        self.mem_mb = mem_mb
        argv, env = qemu_command(version)
        argv += [
            "-M", "%s,memory-backend=pc.ram" % machine,
            "-object", "memory-backend-file,id=pc.ram,size=%dM,mem-path=%s,"
                       "share=on" % (mem_mb, self.ram_path),
            "-m", "%d" % mem_mb,
            "-display", "none", "-nodefaults", "-accel", accel,
            "-serial", "file:" + self.serial_path,
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
        ]
        if bios:
            argv += ["-bios", bios]
        if incoming:
            argv += ["-incoming", incoming]
        argv += list(extra)
        # e.g. ip netns exec NS: QEMU then opens its taps in that namespace
        argv = list(prefix) + argv
        self.argv = argv
        self.log_path = os.path.join(workdir, "qemu-%s.stderr" % version)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        try:
            self.qmp = QMP(self.qmp_path)
        except Exception:
            self.kill()
            raise RuntimeError("QEMU %s did not start: %s" %
                               (version, self.stderr()))

    def serial(self):
        try:
            with open(self.serial_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        try:
            os.unlink(self.ram_path)
        except FileNotFoundError:
            pass

    def quit(self):
        try:
            self.qmp.cmd("quit")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.qmp.close()
        self.kill()


def qemu_binary():
    """The stock QEMU 10.0 the tests run: $QEMU, else qemu-system-x86_64
    on the PATH; None if neither is there."""
    exe = os.environ.get("QEMU") or "qemu-system-x86_64"
    if os.sep in exe:
        return exe if os.access(exe, os.X_OK) else None
    return shutil.which(exe)


def require_qemu(version):
    """Skips the calling test (visibly: the script then exits 77) unless
    stock QEMU @version can be run."""
    qemu_command(version)


def qemu_command(version):
    """argv prefix and environment to run stock QEMU of @version."""
    env = dict(os.environ)
    if version == "10.0":
        exe = qemu_binary()
        if not exe:
            raise unittest.SkipTest(
                "QEMU is missing: %s is not an executable (set QEMU= or run "
                "scripts/install-deps.sh)" % (os.environ.get("QEMU") or
                                              "qemu-system-x86_64"))
        return [exe], env
    if version == "7.2":
        exe = os.path.join(QEMU72_ROOT, "usr", "bin", "qemu-system-x86_64")
        if not os.path.exists(exe):
            raise unittest.SkipTest("QEMU 7.2 is missing: it is not unpacked "
                                    "in %s (scripts/install-deps.sh)"
                                    % QEMU72_ROOT)
        env["QEMU_MODULE_DIR"] = os.path.join(QEMU72_ROOT, "usr", "lib",
                                              "x86_64-linux-gnu", "qemu")
        return [exe, "-L", os.path.join(QEMU72_ROOT, "usr", "share", "qemu"),
                "-L", "/usr/share/seabios"], env
    raise ValueError(version)


class Secondary(LoggedProcess):
    """colo-secondary with a QMP socket."""

    def __init__(self, workdir, incoming="defer", ram_dir=None, extra=(),
                 name="colo-test", prefix=(), env=None):
        self.workdir = workdir
        self.ram_dir = ram_dir or os.path.join(workdir, "ram")
        self.qmp_path = os.path.join(workdir, "secondary.qmp")
        self.log_path = os.path.join(workdir, "secondary.stderr")
        self.log = open(self.log_path, "wb")
        extra = list(extra)
        if any(a.startswith("-failover") for a in extra) and \
                "-failover-qemu" not in extra and qemu_binary():
            # the failover QEMU is the one the tests run ($QEMU)
            extra += ["-failover-qemu", qemu_binary()]
        argv = [paths.SECONDARY, "-name", name, "-ram-dir", self.ram_dir,
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
                "-incoming", incoming] + extra
        # e.g. ip netns exec NS: the failover QEMU opens its taps there
        argv = list(prefix) + argv
        self.proc = subprocess.Popen(argv, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, **(env or {})))
        self.qmp = QMP(self.qmp_path)

    def quit(self):
        """Ends colo-secondary; its last events stay in self.qmp.events."""
        try:
            self.qmp.cmd("quit")
            self.qmp.read_to_eof()
        except Exception:
            pass
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.qmp.close()
        self.log.close()
        return rc


def run_once(stream, ram_dir, extra=(), timeout=120):
    """colo-secondary --once on a file; returns (exit code, stderr)."""
    argv = [paths.SECONDARY, "--once", "-ram-dir", ram_dir] + list(extra) + \
           ["-incoming", "file:" + stream]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stderr.decode(errors="replace")


class ColoSecondary(Secondary):
    """colo-secondary listening on TCP with x-colo and events on."""

    def __init__(self, workdir, **kw):
        super().__init__(workdir, **kw)
        self.qmp.set_caps(**{"x-colo": True, "events": True})
        self.qmp.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
        info = self.qmp.cmd("query-migrate")
        self.port = int(info["socket-address"][0]["port"])

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port))


class DiskSecondary(ColoSecondary):
    """colo-secondary with the raw image @image as node @node, exported
    writable over NBD on a UNIX socket (self.nbd_path, self.uri)."""

    def __init__(self, workdir, image, node="disk0", extra=(), **kw):
        super().__init__(workdir, extra=["-blockdev",
                                         "driver=file,node-name=%s,"
                                         "filename=%s" % (node, image)]
                         + list(extra), **kw)
        self.nbd_path = os.path.join(workdir, "nbd.sock")
        self.qmp.cmd("nbd-server-start", addr={
            "type": "unix", "data": {"path": self.nbd_path}})
        self.qmp.cmd("nbd-server-add", device=node, writable=True)
        self.uri = "nbd+unix:///%s?socket=%s" % (node, self.nbd_path)


def qemu_status(qmp_path):
    """QEMU's run state ("running", "paused"...) through a connection of
    its own (QEMU's monitor takes one client at a time)."""
    q = QMP(qmp_path)
    try:
        return q.cmd("query-status")["status"]
    finally:
        q.close()


def start_logged(test, argv, log_path):
    """Starts @argv with its stdout and stderr in @log_path (the process
    gets .log_path); killed at @test's cleanup if still running."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = log_path

    def stop():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    test.addCleanup(stop)
    return proc


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")
