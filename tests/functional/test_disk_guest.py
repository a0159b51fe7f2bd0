"""A real Linux guest with a virtio-blk disk, protected with its disk
(colo-primary --disk, mirrored into colo-secondary's NBD export).

The witness is the guest itself (tests/guest/linux/diskcheck.c): it
writes 4 KiB records with O_DIRECT|O_SYNC to random blocks, keeps in its
memory which record each block holds, and every 64 writes reads the whole
area back and compares.  After a failover the guest's memory and its disk
come from one checkpoint, so a disk that is ahead of or behind RAM shows
as "DISK MISMATCH".  The primary QEMU is SIGKILLed at random moments
(COLO_DISK_RUNS, 3 here; `make soak` runs 20).

A second oracle, by hash: colo-primary --verify-disk compares the
standby's image file with the VM's image as it was at the pause, after
every checkpoint (SHA-256 of both files, neither read through our code),
and a control run shows that this comparison can fail.  Re-protection:
the failover QEMU's disk is mirrored to a new standby."""

import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402

RUNS = int(os.environ.get("COLO_DISK_RUNS", "3"))
DISK_MB = 16


def disk_lines(text):
    return [ln for ln in ct.complete_lines(text) if ln.startswith("DISK")]


def verified(line):
    return int(line.split("verified=")[1].split()[0])


class DiskGuestFailover(ct.TempDirTestCase):

    def setUp(self):
        super().setUp()
        ct.require_linux_guest()
        ct.require_qemu("10.0")
        ct.require_netns()

    def test_failover_keeps_disk_and_ram_in_step(self):
        rnd = random.Random(int(os.environ.get("COLO_DISK_SEED", "11")))
        for run in range(RUNS):
            with self.subTest(run=run):
                self.one_failover(run, rnd)

    def one_failover(self, run, rnd):
        d = os.path.join(self.tmp, "run%d" % run)
        os.makedirs(d)
        ns = ct.NetNs("dg%d" % run)
        g = None
        try:
            g = ct.ProtectedLinuxGuest(d, ns, disk_mb=DISK_MB, run="disk")
            # a few checkpoints with the disk busy, then a random moment
            ct.wait_for(lambda: g.sec.qmp.cmd("query-colo-status")[
                "x-checkpoints"] >= 3, 60, "three checkpoints")
            time.sleep(rnd.uniform(0.2, 3.0))
            before = disk_lines(g.vm.serial())
            x = g.sec.qmp.cmd("query-block")[0]["inserted"]["x-colo"]
            g.vm.kill()
            g.wait_failover(60)
            # the resumed guest checks its whole disk at least twice
            last = [0]

            def checked():
                with open(g.failover_serial, errors="replace") as f:
                    lines = disk_lines(f.read())
                ok = [ln for ln in lines if ln.startswith("DISK ok")]
                last[0] = lines
                return len(ok) >= 3 and verified(ok[-1]) >= verified(ok[0]) + 2

            ct.wait_for(checked, 60, "the resumed guest to check its disk")
            after = last[0]
            bad = [ln for ln in before + after if "MISMATCH" in ln or
                   "ERROR" in ln]
            self.assertEqual(bad, [], "run %d" % run)
            print("\nrun %d: killed after %d checkpoints (%d disk commits, "
                  "%d pages in the last); the resumed guest checked its "
                  "disk %d times, clean" % (
                      run, g.sec.qmp.cmd("query-colo-status")[
                          "x-checkpoints"], x["commits"],
                      x["last-commit-pages"],
                      verified(after[-1]) - verified(after[0])),
                  file=sys.stderr)
        finally:
            if g:
                g.close()
            ns.close()


class DiskGuestVerified(ct.TempDirTestCase):

    def setUp(self):
        super().setUp()
        ct.require_linux_guest()
        ct.require_qemu("10.0")
        ct.require_netns()
        self.namespaces = []

    def tearDown(self):
        for ns in self.namespaces:
            ns.close()
        super().tearDown()

    def netns(self):
        self.namespaces.append(ct.NetNs("dv%d" % len(self.namespaces)))
        return self.namespaces[-1]

    def protect(self, d, extra, checkpoints):
        os.makedirs(d)
        g = ct.ProtectedLinuxGuest(
            d, self.netns(), disk_mb=DISK_MB, run="disk",
            wait_checkpoint=False, heartbeat_ms=0,
            agent_args=extra + ["--checkpoints", str(checkpoints)])
        try:
            # with its monitor colo-primary stays up when the session ends
            ct.wait_for(lambda: g.agent_query().get("status") in (
                "completed", "failed") or g.agent.poll() is not None, 300,
                "the session to end")
            return g.agent_query().get("status"), g.agent_log_text(), g
        except Exception:
            g.close()
            raise

    def test_standby_image_is_the_checkpoint(self):
        d = os.path.join(self.tmp, "verified")
        standby = os.path.join(d, "standby-disk.img")
        st, log, g = self.protect(d, [
            "--verify-disk", "disk0=" + standby,
            "--verify-secondary", os.path.join(d, "sec", "ram")], 15)
        g.close()
        self.assertEqual(st, "completed", log)
        self.assertIn("disk disk0: mirrored to nbd+unix:///disk0", log)
        self.assertEqual(log.count("secondary verified"), 16, log)

        # the control: the same comparison against an image that is not
        # the standby's must fail
        d = os.path.join(self.tmp, "control")
        wrong = os.path.join(self.tmp, "wrong.img")
        with open(wrong, "wb") as f:
            f.truncate(DISK_MB << 20)
        st, log, g = self.protect(d, ["--verify-disk", "disk0=" + wrong], 3)
        g.close()
        self.assertEqual(st, "failed", log)
        self.assertIn("differs from the VM's disk disk0", log)

    def test_reprotect_after_failover(self):
        d = os.path.join(self.tmp, "first")
        os.makedirs(d)
        ns = self.netns()
        g = ct.ProtectedLinuxGuest(d, ns, disk_mb=DISK_MB, run="disk")
        agent2 = sec2 = None
        try:
            g.vm.kill()
            ev = g.wait_failover(60)
            qmp = ev["data"]["qmp"]
            ct.wait_for(lambda: "DISK ok" in ct.read_text(g.failover_serial),
                        60, "the resumed guest")
            # a new standby for the resumed VM, disk and all
            d2 = os.path.join(self.tmp, "second")
            os.makedirs(d2)
            image2 = os.path.join(d2, "disk.img")
            with open(image2, "wb") as f:
                f.truncate(DISK_MB << 20)
            sec2 = ct.DiskSecondary(d2, image2, prefix=ns.prefix())
            log = open(os.path.join(d2, "agent.log"), "wb")
            agent2 = subprocess.Popen(
                ns.prefix() + [ct.PRIMARY_AGENT, "--qmp", qmp,
                                    "--ram-file", os.path.join(
                                        g.sec.ram_dir, "pc.ram"),
                                    "--connect", "tcp:127.0.0.1:%d"
                                    % sec2.port,
                                    "--disk", "disk0=" + sec2.uri,
                                    "--verify-disk", "disk0=" + image2,
                                    "--checkpoints", "5"],
                stdout=log, stderr=subprocess.STDOUT)
            rc = agent2.wait(timeout=300)
            log.close()
            text = ct.read_text(os.path.join(d2, "agent.log"))
            self.assertEqual(rc, 0, text)
            self.assertIn("checkpoint 5:", text)
            self.assertIn("disk disk0: mirrored", text)
            # the resumed guest never saw its disk disagree
            serial = ct.read_text(g.failover_serial)
            self.assertNotIn("MISMATCH", serial)
        finally:
            if agent2 and agent2.poll() is None:
                agent2.send_signal(signal.SIGKILL)
                agent2.wait()
            if sec2:
                sec2.quit()
            g.close()


if __name__ == "__main__":
    ct.main()
