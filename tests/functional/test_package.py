#!/usr/bin/env python3
"""The Debian package, installed and used (make check-package).

`make deb` built build/deb/colo-standby_VERSION_amd64.deb.  This script
runs itself again in a mount namespace of its own, where /usr, /etc and
/var are overlays whose changes land in a tmpfs, and /run and /dev/shm are
fresh tmpfs: dpkg installs the package there as on a real machine, and
nothing of it reaches the machine's own file systems.

In that throwaway root:
  * dpkg -i installs it; the files the package promises are where
    Debian's conventions put them; the man pages render without warnings
    and carry the options of the installed programs' --help;
    systemd-analyze verify accepts the installed units; the installed OCF
    agent answers meta-data;
  * the installed programs protect the colo-guest in stock QEMU 10.0 and
    fail it over, each started with the command line of its installed
    systemd unit (ExecStart, %i = the VM's name) and its options from
    /etc/colo-standby/: colo-primary@ checkpoints the VM into
    colo-secondary@; colo-secondary is SIGKILLed and started again as the
    unit would restart it, recovers the committed checkpoint from
    /dev/shm/colo/NAME, and resumes the VM from it in a stock QEMU, whose
    guest goes on from the committed counter;
  * dpkg --purge removes it all again.
"""

import glob
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402
from test_failover import check_guest_runs_on, guest_pages_ok  # noqa: E402

DEB_DIR = os.environ.get("COLO_DEB_DIR",
                         os.path.join(ct.BUILD_ROOT, "deb"))
INSIDE = "COLO_PACKAGE_ROOT"
NAME = "pkgtest"
UNIT_DIR = "/lib/systemd/system"
INSTALLED = [
    "/usr/bin/colo-secondary",
    "/usr/bin/colo-primary",
    "/usr/lib/ocf/resource.d/colo-standby/colo",
    "/usr/lib/colo-standby/python/colo_ocf/actions.py",
    UNIT_DIR + "/colo-secondary@.service",
    UNIT_DIR + "/colo-primary@.service",
    "/usr/share/man/man8/colo-secondary.8.gz",
    "/usr/share/man/man8/colo-primary.8.gz",
    "/usr/share/doc/colo-standby/copyright",
    "/usr/share/doc/colo-standby/examples/vm1.conf",
]


def the_deb():
    debs = sorted(glob.glob(os.path.join(DEB_DIR, "colo-standby_*_amd64.deb")))
    if not debs:
        raise AssertionError("no colo-standby .deb in %s: run make deb "
                             "(make check-package does)" % DEB_DIR)
    return debs[-1]


def throwaway_root():
    """Inside our private mount namespace: overlays on /usr, /etc and /var
    (their upper layers in a tmpfs), fresh tmpfs on /run and /dev/shm."""
    if os.readlink("/proc/self/ns/mnt") == os.environ[INSIDE]:
        raise SystemExit("test_package: not in a mount namespace of its own")
    layers = tempfile.mkdtemp(prefix="colo-package-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g", "colo-package",
                    layers], check=True)
    for d in ("/usr", "/etc", "/var"):
        up = os.path.join(layers, d.strip("/"))
        os.makedirs(up + "/upper")
        os.makedirs(up + "/work")
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        "lowerdir=%s,upperdir=%s/upper,workdir=%s/work"
                        % (d, up, up), d], check=True)
    for d in ("/run", "/dev/shm"):
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs",
                        d], check=True)
    return layers


def unit_setting(unit, key):
    """The value of @key= in the installed @unit, %i = NAME."""
    with open(os.path.join(UNIT_DIR, unit)) as f:
        for line in f:
            if line.startswith(key + "="):
                return line.split("=", 1)[1].strip().replace("%i", NAME)
    raise AssertionError("%s has no %s=" % (unit, key))


def unit_command(unit):
    """The installed unit's ExecStart for the instance NAME, as argv."""
    return shlex.split(unit_setting(unit, "ExecStart"))


def runtime_dir(unit):
    """Makes the unit's RuntimeDirectory=, as systemd would."""
    d = os.path.join("/run", unit_setting(unit, "RuntimeDirectory"))
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Package(ct.TempDirTestCase):

    def run_ok(self, argv, **kw):
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, **kw)
        self.assertEqual(p.returncode, 0, "%s:\n%s" % (" ".join(argv),
                                                       p.stdout))
        return p.stdout

    def test_install_use_remove(self):
        ct.require_qemu("10.0")
        deb = the_deb()
        self.assertFalse(os.path.exists("/usr/bin/colo-secondary"),
                         "the root is not fresh")
        self.run_ok(["dpkg", "-i", deb])
        status = self.run_ok(["dpkg-query", "-W", "-f", "${Status}",
                              "colo-standby"])
        self.assertEqual(status, "install ok installed")
        for path in INSTALLED:
            self.assertTrue(os.path.exists(path), path)
        with self.subTest("man pages"):
            self.check_man_pages()
        with self.subTest("units"):
            out = self.run_ok(["systemd-analyze", "verify", "--man=no",
                               UNIT_DIR + "/colo-secondary@.service",
                               UNIT_DIR + "/colo-primary@.service"])
            self.assertEqual(out.strip(), "", out)
        with self.subTest("OCF agent"):
            out = self.run_ok(["/usr/lib/ocf/resource.d/colo-standby/colo",
                               "meta-data"],
                              env=dict(os.environ, OCF_ROOT="/usr/lib/ocf"))
            self.assertIn('<resource-agent name="colo"', out)
        with self.subTest("protect, restart, fail over"):
            self.protect_and_fail_over()
        self.run_ok(["dpkg", "--purge", "colo-standby"])
        for path in INSTALLED:
            self.assertFalse(os.path.exists(path), path)
        status = subprocess.run(["dpkg-query", "-W", "-f", "${Status}",
                                 "colo-standby"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True).stdout
        self.assertNotIn("installed", status.replace("not-installed", ""))

    def check_man_pages(self):
        for prog, options in (("colo-secondary",
                               ("-failover-libvirt-xml", "-config")),
                              ("colo-primary",
                               ("--libvirt-domain", "--config"))):
            p = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l",
                                "/usr/share/man/man8/%s.8.gz" % prog],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=dict(os.environ, MANWIDTH="80",
                                                   MAN_KEEP_FORMATTING="0"))
            self.assertEqual((p.returncode, p.stderr), (0, ""))
            page = re.sub(".\b", "", p.stdout)     # no overstrike
            for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "FILES",
                            "EXIT STATUS"):
                self.assertIn("\n" + heading, page, prog)
            helptext = subprocess.run(["/usr/bin/" + prog, "--help"],
                                      stdout=subprocess.PIPE, text=True)
            for opt in options:
                self.assertIn(opt, helptext.stdout)
                self.assertIn(opt, page.replace("\u2010", "-"))

    def protect_and_fail_over(self):
        port = free_port()
        serial = os.path.join(self.tmp, "resumed-serial.log")
        ram_dir = "/dev/shm/colo/" + NAME
        os.makedirs("/etc/colo-standby")
        with open("/etc/colo-standby/%s.conf" % NAME, "w") as f:
            f.write("# written by test_package.py\n"
                    "-incoming tcp:127.0.0.1:%d\n"
                    "-global migration.x-colo=on -global migration.events=on\n"
                    "-failover on -failover-qemu %s\n"
                    "-failover-args '-nodefaults -display none -accel tcg "
                    "-bios %s -serial file:%s'\n"
                    % (port, ct.qemu_binary(), ct.GUEST_BIOS, serial))
        qmp_path = os.path.join(runtime_dir("colo-secondary@.service"),
                                "qmp.sock")
        vm = ct.Qemu("10.0", self.tmp, mem_mb=64, bios=ct.GUEST_BIOS,
                     ram_path=os.path.join(self.tmp, "vm.ram"))
        with open("/etc/colo-standby/%s.primary.conf" % NAME, "w") as f:
            f.write("--qmp %s\n--ram-file %s\n--connect tcp:127.0.0.1:%d\n"
                    "--checkpoints 10 -q\n"
                    % (vm.qmp_path, vm.ram_path, port))
        runtime_dir("colo-primary@.service")
        ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
        vm.qmp.close()                  # QEMU serves one QMP client
        sec = sec2 = None
        pid = None
        try:
            # no standby yet: colo-primary ends with status 2, which its
            # unit restarts (RestartPreventExitStatus= does not name it)
            primary = self.start_unit("colo-primary@.service", "primary-0")
            self.assertEqual(self.wait_unit(primary, 60), 2,
                             ct.read_text(primary.log_path))
            self.assertNotIn("2", unit_setting(
                "colo-primary@.service", "RestartPreventExitStatus").split())
            self.assertEqual(unit_setting("colo-primary@.service",
                                          "Restart"), "on-failure")
            sec = self.start_unit("colo-secondary@.service", "secondary-1")
            q = ct.wait_for(lambda: self.try_qmp(qmp_path), 30,
                            "colo-secondary's QMP socket")
            q.close()
            primary = self.start_unit("colo-primary@.service", "primary")
            self.assertEqual(self.wait_unit(primary, 300), 0,
                             ct.read_text(primary.log_path))
            vm.kill()                       # only one copy lives on
            # colo-secondary crashes; its unit starts it again
            sec.send_signal(signal.SIGKILL)
            sec.wait()
            sec2 = self.start_unit("colo-secondary@.service", "secondary-2")
            q = ct.wait_for(lambda: self.try_qmp(qmp_path), 30,
                            "the restarted colo-secondary's QMP socket")
            st = q.cmd("query-colo-status")
            self.assertEqual(st["x-recovered"]["checkpoint"], 10, st)
            with open(os.path.join(ram_dir, "pc.ram"), "rb") as f:
                ok, committed = guest_pages_ok(f.read())
            self.assertTrue(ok, committed)
            q.cmd("x-colo-lost-heartbeat")
            ev = q.wait_event("X_COLO_FAILOVER", 60)
            self.assertNotIn("error", ev["data"], ev)
            pid = ev["data"]["pid"]
            vmq = ct.QMP(ev["data"]["qmp"])
            check_guest_runs_on(self, serial, ram_dir, committed, 0x20000,
                                vmq)
            vmq.cmd("quit")
            vmq.close()
            q.cmd("quit")
            q.close()
            self.assertEqual(self.wait_unit(sec2, 30), 0,
                             ct.read_text(sec2.log_path))
            print("\ninstalled units: protected 10 checkpoints, colo-"
                  "secondary restarted with the folder's checkpoint 10, "
                  "guest resumed from C=%x" % committed, file=sys.stderr)
        finally:
            ct.kill_pid(pid)
            vm.kill()
            for p in (sec, sec2):
                if p and p.poll() is None:
                    p.kill()
                    p.wait()

    def start_unit(self, unit, log):
        argv = unit_command(unit)
        self.assertTrue(argv[0].startswith("/usr/bin/"), argv)
        log_path = os.path.join(self.tmp, log + ".log")
        with open(log_path, "wb") as f:
            p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        p.log_path = log_path
        return p

    def wait_unit(self, p, timeout):
        """@p's exit status; fails with its output if it outlives
        @timeout seconds."""
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self.fail("%s still ran after %d s:\n%s" % (
                " ".join(p.args), timeout, ct.read_text(p.log_path)))

    @staticmethod
    def try_qmp(path):
        try:
            return ct.QMP(path)
        except OSError:
            return None


if __name__ == "__main__":
    if not os.environ.get(INSIDE):
        # again, in a mount namespace of our own (the variable: the one
        # we leave, which the mounts must not be in)
        os.environ[INSIDE] = os.readlink("/proc/self/ns/mnt")
        os.execvp("unshare", ["unshare", "--mount", "--propagation",
                              "private", "--", sys.executable,
                              os.path.abspath(__file__)] + sys.argv[1:])
    layers = throwaway_root()
    try:
        ct.main()
    finally:
        subprocess.run(["umount", "-l", layers])
        os.rmdir(layers)
