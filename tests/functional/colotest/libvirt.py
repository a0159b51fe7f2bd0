"""A libvirtd of the test's own, and the domains the libvirt tests run.

libvirtd as root keeps its sockets, state, logs and configuration in fixed
places (/run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/
libvirt, /etc/libvirt) and wants its QEMU user to exist.  So each Libvirtd
runs in a mount namespace of its own (unshare) where those folders, and
/etc/passwd and /etc/group with a libvirt-qemu user added, are bind mounts
of folders under the test's: nothing of the machine changes, two of them
(a primary host and a standby host) run side by side, and from outside
everything is under ROOT (the socket is ROOT/run/libvirt/libvirt-sock).
QEMU runs as root without confinement (qemu.conf below); it shares the
machine's /tmp and /dev/shm.  Optionally inside a network namespace, for
the taps of the domain's NICs."""

import glob
import os
import pty
import select
import shutil
import signal
import subprocess
import time
import unittest
import uuid

from . import paths
from .base import wait_for

LIBVIRTD = "/usr/sbin/libvirtd"
VIRSH = "/usr/bin/virsh"

QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
namespaces = [ ]
"""

LIBVIRTD_CONF = """\
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0777"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""

# the folders the namespace gets from ROOT (ROOT/<dir> is mounted on /<dir>)
BOUND = ("run", "var/lib", "var/log", "var/cache", "etc/libvirt")

START = """\
set -e
mount --make-rprivate /
for d in %s; do mount --bind "$1/$d" "/$d"; done
mount --bind "$1/etc-files/passwd" /etc/passwd
mount --bind "$1/etc-files/group" /etc/group
exec %s --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirtd.pid
""" % (" ".join(BOUND), LIBVIRTD)


def require_libvirt():
    """Skips the calling test (visibly: the script then exits 77) where
    libvirtd, virsh or unshare are missing; scripts/install-deps.sh
    installs them."""
    for exe in (LIBVIRTD, VIRSH, shutil.which("unshare") or "unshare"):
        if not os.access(exe, os.X_OK):
            raise unittest.SkipTest("%s is missing (scripts/install-deps.sh)"
                                    % exe)


def _passwd_with_qemu_user(root):
    os.makedirs(os.path.join(root, "etc-files"))
    with open("/etc/passwd") as f:
        passwd = f.read()
    with open("/etc/group") as f:
        group = f.read()
    if "\nlibvirt-qemu:" not in "\n" + passwd:
        passwd += "libvirt-qemu:x:64055:64055::/nonexistent:/bin/false\n"
    for g in ("libvirt-qemu", "kvm"):
        if "\n%s:" % g not in "\n" + group:
            group += "%s:x:%d:\n" % (g, 64055 if g == "libvirt-qemu"
                                     else 64054)
    with open(os.path.join(root, "etc-files", "passwd"), "w") as f:
        f.write(passwd)
    with open(os.path.join(root, "etc-files", "group"), "w") as f:
        f.write(group)


class Libvirtd:
    """libvirtd in its own mount namespace under @workdir/@name."""

    def __init__(self, workdir, name, prefix=()):
        self.root = os.path.join(workdir, "libvirt-" + name)
        # host_uuid: each daemon is a host of its own to libvirt (a
        # migration between two with the machine's UUID is refused)
        self.host_uuid = str(uuid.uuid4())
        for d in BOUND:
            os.makedirs(os.path.join(self.root, d))
        # /var/lock is /run/lock: libvirtd locks a console's pty there
        for d in ("var/lib/libvirt", "var/log/libvirt", "var/cache/libvirt",
                  "run/lock"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        with open(os.path.join(self.root, "etc/libvirt/qemu.conf"), "w") as f:
            f.write(QEMU_CONF)
        with open(os.path.join(self.root, "etc/libvirt/libvirtd.conf"),
                  "w") as f:
            f.write(LIBVIRTD_CONF + 'host_uuid = "%s"\n' % self.host_uuid)
        _passwd_with_qemu_user(self.root)
        self.sock = os.path.join(self.root, "run/libvirt/libvirt-sock")
        self.uri = "qemu+unix:///system?socket=" + self.sock
        self.ro_uri = "qemu+unix:///system?socket=" + self.sock + "-ro"
        self.log_path = os.path.join(self.root, "libvirtd.stderr")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            list(prefix) + ["unshare", "--mount", "--propagation", "private",
                            "sh", "-c", START, "libvirtd", self.root],
            stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for(lambda: self.virsh("version", check=False)
                     .returncode == 0 or self.proc.poll() is not None,
                     30, "libvirtd " + name)
            if self.proc.poll() is not None:
                raise RuntimeError("libvirtd exited: " + self.logs())
        except Exception:
            self.stop()
            raise

    def virsh(self, *args, check=True, timeout=60, uri=None):
        p = subprocess.run([VIRSH, "-c", uri or self.uri] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError("virsh %s: %s%s" % (
                " ".join(args), p.stderr.decode(errors="replace"),
                self.logs()[-2000:]))
        p.out = p.stdout.decode(errors="replace")
        return p

    def logs(self):
        text = ""
        for path in [self.log_path] + glob.glob(os.path.join(
                self.root, "var/log/libvirt/*.log")):
            try:
                with open(path, errors="replace") as f:
                    text += "\n--- %s\n%s" % (path, f.read()[-4000:])
            except OSError:
                pass
        return text

    def qemu_log(self, name):
        try:
            with open(os.path.join(self.root, "var/log/libvirt/qemu",
                                   name + ".log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def qemu_pid(self, name):
        """The pid of domain @name's QEMU (libvirt's pid file), or None."""
        try:
            with open(os.path.join(self.root, "run/libvirt/qemu",
                                   name + ".pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if os.path.exists("/proc/%d" % pid) else None

    def domstate(self, name):
        p = self.virsh("domstate", "--reason", name, check=False)
        return p.out.strip() if p.returncode == 0 else "gone"

    def running(self):
        """The names of the running domains."""
        return self.virsh("list", "--name").out.split()

    def qemu_pids(self):
        """Every live QEMU this libvirtd started."""
        pids = []
        for path in glob.glob(os.path.join(self.root,
                                           "run/libvirt/qemu/*.pid")):
            if os.path.basename(path) == "driver.pid":     # libvirtd's
                continue
            try:
                with open(path) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                continue
            if os.path.exists("/proc/%d" % pid):
                pids.append(pid)
        return pids

    def console(self, name, seconds):
        """What `virsh console NAME` shows in @seconds (virsh wants a
        terminal: it gets a pty), then Ctrl-] ends it."""
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(VIRSH, [VIRSH, "-c", self.uri, "console", "--force",
                             name])
        out = b""
        deadline = time.time() + seconds
        try:
            while time.time() < deadline:
                r, _, _ = select.select([fd], [], [], 0.2)
                if r:
                    try:
                        out += os.read(fd, 4096)
                    except OSError:
                        break
            os.write(fd, b"\x1d")
        finally:
            try:
                os.waitpid(pid, 0)
            finally:
                os.close(fd)
        return out.decode(errors="replace")

    def stop(self):
        """Destroys every domain, ends libvirtd and kills what is left."""
        if self.proc.poll() is None:
            p = self.virsh("list", "--name", check=False, timeout=20)
            for name in p.out.split() if p.returncode == 0 else []:
                self.virsh("destroy", name, check=False, timeout=20)
        for pid in self.qemu_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        # libvirt's QEMUs are not our children: wait until they are gone,
        # so their RAM files can go
        deadline = time.time() + 10
        while self.qemu_pids() and time.time() < deadline:
            time.sleep(0.05)


NIC_MAC = "52:54:00:c0:10:01"


def domain_xml(name, uuid, serial, boot, mem_mb=64, shared_ram=True,
               monitor=None, console=False, nic=False):
    """A TCG domain booting @boot (the inside of <os>), printing on
    @serial (with @console: a pty for virsh console, logged to @serial);
    its RAM in a shared file unless not @shared_ram; with @monitor, a
    second QMP socket at that path (in the namespace); with @nic, a
    virtio NIC on QEMU's user network (MAC NIC_MAC)."""
    backing = ("  <memoryBacking><source type='file'/><access mode='shared'/>"
               "</memoryBacking>\n") if shared_ram else ""
    extra = ("  <qemu:commandline><qemu:arg value='-qmp'/><qemu:arg "
             "value='unix:%s,server=on,wait=off'/></qemu:commandline>\n"
             % monitor) if monitor else ""
    return """\
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>%s</name>
  <uuid>%s</uuid>
  <memory unit='MiB'>%d</memory>
  <vcpu>1</vcpu>
%s  <os><type arch='x86_64' machine='pc'>hvm</type>
      %s</os>
  <features><acpi/></features>
  <devices>
    <emulator>%s</emulator>
    %s
    %s<memballoon model='none'/>
  </devices>
%s</domain>
""" % (name, uuid, mem_mb, backing, boot, qemu_emulator(),
       ("<serial type='pty'><log file='%s' append='off'/></serial>"
        "<console type='pty'/>" if console else
        "<serial type='file'><source path='%s'/></serial>") % serial,
       ("<interface type='user'><mac address='%s'/><model type='virtio'/>"
        "</interface>\n    " % NIC_MAC) if nic else "", extra)


def colo_guest_xml(name, uuid, serial, **kw):
    """The colo-guest firmware as a domain (domain_xml)."""
    return domain_xml(name, uuid, serial,
                      "<loader type='rom'>%s</loader>" % paths.GUEST_BIOS,
                      **kw)


def linux_guest_xml(name, uuid, serial, cmdline, mem_mb=128, **kw):
    """The Linux guest (Debian's kernel, the busybox initramfs) as a
    domain, with @cmdline after console=ttyS0 (domain_xml)."""
    kernel = os.path.join(paths.LINUX_GUEST, "vmlinuz")
    initrd = os.path.join(paths.LINUX_GUEST, "initramfs.cpio.gz")
    return domain_xml(name, uuid, serial,
                      "<kernel>%s</kernel><initrd>%s</initrd>"
                      "<cmdline>console=ttyS0 panic=-1 %s</cmdline>"
                      % (kernel, initrd, cmdline), mem_mb=mem_mb, **kw)


def qemu_emulator():
    from .procs import qemu_binary
    return qemu_binary() or "/usr/bin/qemu-system-x86_64"
