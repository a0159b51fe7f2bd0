#!/usr/bin/env python3
"""A full standby (part 3 of issue 29): the secondary's RAM folder lives
on a small tmpfs of the test's own (mounted in a private mount namespace
that a holder process keeps; colo-secondary runs in it through nsenter,
and the test reaches its files through /proc/HOLDER/root).

The colo-guest in stock QEMU 10.0 (64 MiB) is protected by colo-primary
through the test's PrimaryOracle, which hashes the primary's RAM at every
pause; nothing of colo-standby decides what is right.

  * No room for the initial synchronisation: the standby refuses it and
    removes what it made; colo-primary exits with status 2 and the
    standby's reason (X_STANDBY_ERROR, include/migration/wire.h) at
    once, not after its stall limit; the VM runs on.  Once space is
    freed, a restarted standby on the same folder is protected into and
    its checkpoints are the primary's.
  * The tmpfs fills while protected: the next checkpoint cannot be
    cached, the standby ends COLO with the reason, and its RAM file is
    still exactly the primary's RAM of the last committed checkpoint.
    colo-primary (with a monitor) shows why in query-migrate and
    query-colo-status and the VM runs on.  The committed checkpoint
    fails over into stock QEMU on the full filesystem (paused with -S:
    its RAM is that checkpoint) and the guest runs on from it; once
    space is freed, protection works again from the same folder.
"""

import errno
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402

GUEST_MB = 64
DISK_MB = 32


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class FullStandby(ct.TempDirTestCase):

    def small_fs(self, mb):
        """A tmpfs of @mb MiB that only the holder's mount namespace sees;
        returns the folder's path as the host sees it."""
        self.mnt = os.path.join(self.tmp, "small")
        os.makedirs(self.mnt)
        holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs -o size=%dm colo-full "$0" && echo ready && '
             'exec sleep 3600' % mb, self.mnt],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: (holder.kill(), holder.wait(),
                                 holder.stdout.close()))
        self.assertEqual(holder.stdout.readline().strip(), b"ready")
        self.holder = holder.pid
        return "/proc/%d/root%s" % (holder.pid, self.mnt)

    def secondary(self, name, extra=()):
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        return ct.ColoSecondary(
            d, ram_dir=os.path.join(self.mnt, "standby"), extra=extra,
            prefix=["nsenter", "-t", str(self.holder), "-m", "--"])

    def fill(self, path, leave=0):
        """Takes the filesystem's free space but @leave bytes, in a
        file; a race with the standby's own use only makes it fuller."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size     # a second call adds to it
            for step in (1 << 20, 4096):
                while free_bytes(path) > leave + step:
                    try:
                        os.posix_fallocate(fd, size, step)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
                    size += step
        finally:
            os.close(fd)

    def protect(self, vm, sec, name, *extra, monitor=False):
        oracle = ct.PrimaryOracle(
            vm.qmp_path, vm.ram_path, os.path.join(self.tmp, name + ".qmp"),
            secondary_ram=os.path.join(self.fs, "standby", "pc.ram"))
        self.addCleanup(oracle.close)
        argv = [ct.PRIMARY_AGENT, "--qmp", oracle.path, "--ram-file",
                vm.ram_path, "--qemu-pid", str(vm.proc.pid)]
        mon = os.path.join(self.tmp, name + ".mon")
        if monitor:
            argv += ["--monitor", "unix:%s,server=on,wait=off" % mon]
        else:
            argv += ["--connect", "tcp:127.0.0.1:%d" % sec.port]
        agent = ct.start_logged(self, argv + list(extra),
                                os.path.join(self.tmp, name + ".log"))
        q = None
        if monitor:
            q = ct.QMP(mon)
            self.addCleanup(q.close)
            q.set_caps(**{"x-colo": True, "events": True})
            q.cmd("migrate", uri="tcp:127.0.0.1:%d" % sec.port)
        return oracle, agent, q

    def guest_runs_on(self, serial_path):
        before = len(ct.guest_counters(serial_path))
        ct.wait_for(lambda: len(ct.guest_counters(serial_path)) > before + 2,
                    60, "the guest running on")

    def start_vm(self):
        ct.require_qemu("10.0")
        vm = ct.Qemu("10.0", self.tmp, mem_mb=GUEST_MB, bios=ct.GUEST_BIOS,
                     ram_path=os.path.join(self.tmp, "vm.ram"))
        self.addCleanup(vm.kill)
        ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
        vm.qmp.close()
        return vm

    def reprotected(self, vm, sec, name):
        """Five checkpoints into @sec, each one checked against the
        primary's RAM of its pause."""
        oracle, agent, _ = self.protect(vm, sec, name, "--checkpoints", "5")
        self.assertEqual(agent.wait(timeout=120), 0,
                         ct.read_text(agent.log_path))
        oracle.check()
        self.assertGreaterEqual(oracle.verified, 4)
        return oracle.verified

    def test_no_room_for_the_initial_sync(self):
        self.fs = self.small_fs(2 * GUEST_MB)
        filler = os.path.join(self.fs, "filler")
        self.fill(filler, leave=(GUEST_MB // 2) << 20)
        vm = self.start_vm()
        sec = self.secondary("sec1")
        try:
            t0 = time.monotonic()
            _, agent, _ = self.protect(vm, sec, "primary1")
            rc = agent.wait(timeout=60)
            took = time.monotonic() - t0
            log = ct.read_text(agent.log_path)
            self.assertEqual(rc, 2, log)
            self.assertIn("gave up", log)
            self.assertIn("No space left on device", log)
            self.assertLess(took, 30, log)
            info = sec.qmp.cmd("query-migrate")
            self.assertEqual(info["status"], "failed", info)
            self.assertIn("No space left on device", info["error-desc"])
            # nothing of the refused stream stays in the folder
            left = set(os.listdir(os.path.join(self.fs, "standby")))
            self.assertLessEqual(left, {"colo-owner.lock"}, left)
            self.assertEqual(ct.qemu_status(vm.qmp_path), "running")
            self.guest_runs_on(vm.serial_path)
            self.assertEqual(sec.quit(), 0, sec.stderr())

            # space freed: the restarted standby is protected into
            os.unlink(filler)
            sec = self.secondary("sec2")
            checked = self.reprotected(vm, sec, "primary2")
            print("\nfull standby, initial sync: refused in %.1f s "
                  "(%s); %d checkpoints checked once space was freed"
                  % (took, log.strip().splitlines()[-1][:120], checked),
                  file=sys.stderr)
        finally:
            sec.quit()

    def test_fills_while_protected(self):
        self.fs = self.small_fs(2 * GUEST_MB + 32)
        serial = os.path.join(self.tmp, "failover-serial.log")
        args = ("-nodefaults -display none -accel tcg -bios %s "
                "-serial file:%s -S" % (ct.GUEST_BIOS, serial))
        vm = self.start_vm()
        sec = self.secondary("sec1", extra=["-failover-args", args])
        pid = None
        try:
            oracle, agent, q = self.protect(vm, sec, "primary1",
                                            "--x-checkpoint-delay", "100",
                                            monitor=True)
            ct.wait_for(lambda: q.cmd("query-migrate").get(
                "x-colo-checkpoints", 0) >= 5, 60, "5 checkpoints")
            # full, and kept full: what a commit gives back (its cache
            # pages) is taken again at once, until COLO ends
            filler = os.path.join(self.fs, "filler")
            colo_ended = threading.Event()

            def keep_full():
                while not colo_ended.is_set():
                    self.fill(filler)
                    colo_ended.wait(0.05)
            filling = threading.Thread(target=keep_full, daemon=True)
            filling.start()
            try:
                ev = q.wait_event("COLO_EXIT", 60)
            finally:
                colo_ended.set()
                filling.join(10)
            self.assertEqual(ev["data"], {"mode": "primary",
                                          "reason": "error"})
            q.wait_event("MIGRATION", 30,
                         lambda e: e["data"]["status"] == "failed")
            info = q.cmd("query-migrate")
            self.assertIn("gave up", info["error-desc"])
            self.assertIn("No space left on device", info["error-desc"])
            st = q.cmd("query-colo-status")
            self.assertEqual((st["mode"], st["last-mode"], st["reason"]),
                             ("none", "primary", "error"), st)
            self.assertIsNone(agent.poll())
            self.guest_runs_on(vm.serial_path)

            # the standby kept checkpoint n whole
            ev = sec.qmp.wait_event("COLO_EXIT", 30)
            self.assertEqual(ev["data"]["reason"], "error")
            sst = sec.qmp.cmd("query-colo-status")
            n = sst["x-checkpoints"]
            self.assertGreaterEqual(n, 5)
            self.assertIn("No space left on device",
                          sec.qmp.cmd("query-migrate")["error-desc"])
            ram = os.path.join(self.fs, "standby", "pc.ram")
            self.assertEqual(ct.sha256_file(ram), oracle.committed(n)["ram"],
                             "the full standby's RAM is not checkpoint %d"
                             % n)
            oracle.check()
            q.cmd("quit")
            self.assertEqual(agent.wait(timeout=30), 0)
            # (QEMU's monitor takes one client: the agent's is gone now)
            self.assertEqual(ct.qemu_status(vm.qmp_path), "running")

            # ... and fails over from it with the filesystem still full
            sec.qmp.cmd("x-colo-lost-heartbeat")
            ev = sec.qmp.wait_event("X_COLO_FAILOVER", 60)
            self.assertNotIn("error", ev["data"], ev)
            pid = ev["data"]["pid"]
            # (its socket is in the standby's mount namespace)
            fq = ct.QMP("/proc/%d/root%s" % (self.holder, ev["data"]["qmp"]))
            try:
                self.assertFalse(fq.cmd("query-status")["running"])
                self.assertEqual(ct.sha256_file(ram),
                                 oracle.committed(n)["ram"])
                fq.cmd("cont")
                self.guest_runs_on(serial)
            finally:
                fq.close()
            ct.kill_pid(pid)
            pid = None
            self.assertEqual(sec.quit(), 0, sec.stderr())

            # space freed: protection works again from the same folder
            os.unlink(filler)
            sec = self.secondary("sec2")
            checked = self.reprotected(vm, sec, "primary2")
            print("\nfull standby while protected: checkpoint %d kept "
                  "(%s); failed over from it; %d checkpoints checked once "
                  "space was freed" % (n, info["error-desc"][:160], checked),
                  file=sys.stderr)
        finally:
            ct.kill_pid(pid)
            sec.quit()

    def test_disk_cache_fills(self):
        """The disks' epoch cache (in the RAM folder) has no room for a
        checkpoint's writes: the standby image stays the committed one,
        the primary says why, the VM and its disk go on."""
        import hashlib
        self.fs = self.small_fs(GUEST_MB + 16)
        disk = os.path.join(self.tmp, "vm-disk.img")
        standby = os.path.join(self.tmp, "standby.img")
        content = bytes(range(256)) * (DISK_MB << 12)
        for path in (disk, standby):
            with open(path, "wb") as f:
                f.write(content if path == disk else bytes(DISK_MB << 20))
        mon = os.path.join(self.tmp, "test.qmp")
        ct.require_qemu("10.0")
        vm = ct.Qemu("10.0", self.tmp, mem_mb=GUEST_MB, bios=ct.GUEST_BIOS,
                     ram_path=os.path.join(self.tmp, "vm.ram"), extra=[
                         "-blockdev", "driver=raw,node-name=disk0,"
                         "file.driver=file,file.filename=" + disk,
                         "-device", "virtio-blk-pci,drive=disk0,id=vblk",
                         "-qmp", "unix:%s,server=on,wait=off" % mon])
        self.addCleanup(vm.kill)
        ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
        vm.qmp.close()
        sec = self.secondary("sec1", extra=[
            "-blockdev", "driver=file,node-name=disk0,filename=" + standby])
        try:
            nbd = os.path.join(sec.workdir, "nbd.sock")
            sec.qmp.cmd("nbd-server-start", addr={
                "type": "unix", "data": {"path": nbd}})
            sec.qmp.cmd("nbd-server-add", device="disk0", writable=True)
            oracle, agent, _ = self.protect(
                vm, sec, "primary1", "--disk",
                "disk0=nbd+unix:///disk0?socket=" + nbd, "--verify-disk",
                "disk0=" + standby, "--no-net-buffer",
                "--x-checkpoint-delay", "1000")
            ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")[
                "x-checkpoints"] >= 3, 120, "3 checkpoints")
            # room for the guest's RAM pages of a checkpoint, not for the
            # disk's 16 MiB
            self.fill(os.path.join(self.fs, "filler"), leave=8 << 20)
            q = ct.QMP(mon)
            try:
                out = q.cmd("human-monitor-command", **{
                    "command-line": 'qemu-io -d /machine/peripheral/vblk/'
                                    'virtio-backend "write -P 0x5a 0 16M"'})
            finally:
                q.close()
            rc = agent.wait(timeout=60)
            log = ct.read_text(agent.log_path)
            self.assertEqual(rc, 2, log)
            self.assertIn("No space left on device", log)
            # the VM's own write went through, and the VM runs on
            self.assertNotIn("failed", out, out)
            with open(disk, "rb") as f:
                self.assertEqual(f.read(16 << 20), b"\x5a" * (16 << 20))
            self.guest_runs_on(vm.serial_path)
            # the standby image is the committed one: the content before
            # the write (the first copy, nothing written since)
            with open(standby, "rb") as f:
                got = hashlib.sha256(f.read()).hexdigest()
            self.assertEqual(got, hashlib.sha256(content).hexdigest())
            oracle.check()
            # and the standby says why the primary ended the session
            sec.qmp.wait_event("COLO_EXIT", 30)
            why = sec.qmp.cmd("query-migrate")["error-desc"]
            self.assertIn("refused a write of the primary's disk", why)
            self.assertIn("no room in cache file", why)
            self.assertIn("No space left on device", why)
            print("\nfull standby, disk cache: %s; the standby: %s" % ([
                ln for ln in log.splitlines()
                if "No space" in ln][0][:240], why[-200:]), file=sys.stderr)
        finally:
            sec.quit()


if __name__ == "__main__":
    ct.main()
