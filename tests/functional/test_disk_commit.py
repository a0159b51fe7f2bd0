"""Disk replication on colo-secondary, its commit (block/colo-disk.c):
a COLO session replayed from the real QEMU 7.2 capture, with stock
qemu-io writing between checkpoints.

The oracle is the test's own model of the image: a bytearray that every
write the test sends is applied to, kept per checkpoint.  Writes sent
after checkpoint k was acknowledged belong to checkpoint k+1: the image
file must hold exactly the model of the last committed checkpoint, reads
through NBD must show every write acknowledged so far, and a colo-secondary
killed inside a commit leaves the image of checkpoint N or N+1, whichever
its record says."""

import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402
from colotest.disk import (DISK_MB, Writer, file_sha,  # noqa: E402
                           load_capture, make_image, qemu_io, run_epochs, sha)


class DiskCheckpoints(ct.TempDirTestCase):
    """Writes wait for their checkpoint; a cut checkpoint never reaches
    the image."""

    def test_writes_land_with_their_checkpoint(self):
        image = os.path.join(self.tmp, "disk.img")
        model = make_image(image, 4)
        sec = ct.DiskSecondary(self.tmp, image)
        try:
            Writer(sec.uri, model, 5).epoch(4)      # straight, before COLO
            committed = run_epochs(self, sec, image, model, 6, check=True)
            last = len(committed) - 2               # checkpoints acked
            # the epoch after the last checkpoint is only in the cache
            self.assertEqual(file_sha(image), sha(committed[last]))
            ref = os.path.join(self.tmp, "ref.img")
            with open(ref, "wb") as f:
                f.write(committed[-1])
            r = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F",
                                "raw", ref, sec.uri], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            rec = ct.read_record(os.path.join(sec.ram_dir, "colo-checkpoint"))
            self.assertEqual(rec["number"], last)
            self.assertEqual(rec["disks"]["disk0"]["filename"], image)
            st = sec.qmp.cmd("query-colo-status")
            self.assertGreater(st["x-last-disk-pages"], 0)
            x = sec.qmp.cmd("query-block")[0]["inserted"]["x-colo"]
            self.assertTrue(x["caching"])
            self.assertEqual(x["commits"], last)
            self.assertGreater(x["open-pages"], 0)
        finally:
            rc = sec.quit()
        self.assertEqual(rc, 0, sec.stderr())
        # stopped between checkpoints: the image is the last committed one
        self.assertEqual(file_sha(image), sha(committed[last]))

    def test_cut_checkpoint_is_not_applied(self):
        session = load_capture()
        image = os.path.join(self.tmp, "disk.img")
        model = make_image(image, 7)
        sec = ct.DiskSecondary(self.tmp, image)
        try:
            # cut inside the RAM part of the fourth checkpoint
            start, end, _ = session.segments[8]
            committed = run_epochs(self, sec, image, model, 8, check=True,
                                   stop_at=(start + end) // 2)
            sec.qmp.wait_event("COLO_EXIT", 20)
            n = sec.qmp.cmd("query-colo-status")["x-checkpoints"]
            self.assertEqual(file_sha(image), sha(committed[n]))
            self.assertEqual(ct.read_record(os.path.join(
                sec.ram_dir, "colo-checkpoint"))["number"], n)
        finally:
            sec.quit()
        self.assertEqual(file_sha(image), sha(committed[n]))


class DiskCommitCrash(ct.TempDirTestCase):
    """colo-secondary killed inside the commit of checkpoint 3, whose disk
    part is 12 whole pages: the image is then exactly checkpoint 2 or 3,
    as the folder's record (after recovery) says, never a mix."""

    PAGES = 12

    def crash(self, spec, allowed):
        image = os.path.join(self.tmp, "disk.img")
        model = make_image(image, 9)
        ram_dir = os.path.join(self.tmp, "ram")
        sec = ct.DiskSecondary(self.tmp, image, ram_dir=ram_dir,
                            env={"COLO_TEST_CRASH": spec})
        committed = None
        try:
            try:
                committed = run_epochs(self, sec, image, model, 10,
                                       check=False,
                                       pages_at={3: self.PAGES})
            except (OSError, EOFError, AssertionError):
                pass
            rc = sec.proc.wait(timeout=30)
        finally:
            sec.qmp.close()
            sec.log.close()
        self.assertEqual(rc, -signal.SIGKILL, "%s did not fire: %s"
                         % (spec, sec.stderr()))
        if committed is None:
            committed = self.models
        d = os.path.join(self.tmp, "restart")
        os.makedirs(d, exist_ok=True)
        again = ct.Secondary(d, ram_dir=ram_dir, extra=[
            "-blockdev", "driver=file,node-name=disk0,filename=" + image])
        try:
            st = again.qmp.cmd("query-colo-status")
        finally:
            self.assertEqual(again.quit(), 0, again.stderr())
        got = st["x-recovered"]["checkpoint"]
        self.assertIn(got, allowed, spec)
        self.assertEqual(file_sha(image), sha(committed[got]),
                         "%s: image is not checkpoint %d" % (spec, got))
        shutil.rmtree(ram_dir)
        return got, st["x-recovered"]

    def expected_models(self):
        """The models of a run without faults (the writes are seeded)."""
        image = os.path.join(self.tmp, "probe.img")
        model = make_image(image, 9)
        d = os.path.join(self.tmp, "probe")
        os.makedirs(d, exist_ok=True)
        sec = ct.DiskSecondary(d, image)
        try:
            return run_epochs(self, sec, image, model, 10, check=True,
                              pages_at={3: self.PAGES})
        finally:
            sec.quit()

    def test_kill_inside_commit(self):
        self.models = self.expected_models()
        points = [("3:journal-tmp", (2,)), ("3:journal", (3,)),
                  ("3:apply:1", (3,)), ("3:disk:1", (3,)),
                  ("3:disk:6", (3,)), ("3:disk:11", (3,)),
                  ("3:applied", (3,)), ("3:committed", (3,))]
        replayed = 0
        for spec, allowed in points:
            got, rec = self.crash(spec, allowed)
            replayed += rec["replayed"]
        # every point after the journal's rename replayed it
        self.assertEqual(replayed, len(points) - 2)


class DiskFull(ct.TempDirTestCase):
    """The image's filesystem is full when checkpoint 1 commits: COLO
    ends with the reason, the image stays checkpoint 0."""

    def test_disk_full_on_commit(self):
        small = os.path.join(self.tmp, "small")
        os.makedirs(small)
        image = os.path.join(small, "disk.img")
        wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount -t tmpfs -o size=1m colo-test "$0" && '
                'truncate -s %dM "$0/disk.img" && exec "$@"' % DISK_MB, small]
        sec = ct.DiskSecondary(self.tmp, image, prefix=wrap)
        try:
            model = bytearray(DISK_MB << 20)
            w = Writer(sec.uri, model, 11)
            qemu_io(sec.uri, "write -P 7 0 65536")
            model[0:65536] = b"\x07" * 65536
            committed = [bytes(model)]
            session = load_capture()

            def inside(*cmd):
                return subprocess.run(["nsenter", "-t", str(sec.proc.pid),
                                       "-m"] + list(cmd), capture_output=True,
                                      timeout=30)

            def on_commit(k):
                if k == 0:
                    # 4 MiB in a 1 MiB filesystem: cached fine, no room
                    # when checkpoint 1 commits
                    qemu_io(sec.uri, "write -P 9 1M 4M")
                    w.model[1 << 20:5 << 20] = b"\x09" * (4 << 20)

            sock = sec.connect()
            try:
                with self.assertRaises((EOFError, OSError, AssertionError)):
                    ct.replay(sock, session, on_commit=on_commit)
            finally:
                sock.close()
            ev = sec.qmp.wait_event("COLO_EXIT", 20)
            self.assertEqual(ev["data"]["reason"], "error")
            err = sec.qmp.cmd("query-migrate").get("error-desc", "")
            self.assertIn("no room in %s for the writes of checkpoint 1"
                          % image, err)
            self.assertIn("No space left on device", err)
            self.assertEqual(sec.qmp.cmd("query-colo-status")[
                "x-checkpoints"], 0)
            r = inside("sha256sum", image)
            self.assertEqual(r.stdout.split()[0].decode(),
                             sha(committed[0]), r.stderr)
        finally:
            sec.quit()


if __name__ == "__main__":
    ct.main()
