"""Disk replication on colo-secondary, its NBD side (nbd/server.c):
stock QEMU's own NBD clients (qemu-io, qemu-img, qemu-nbd) against the
export, bad input from a raw socket, TLS, and colo-primary mirroring a
VM's disk over TLS.  test_disk_commit.py has the per-checkpoint commit.

The oracle is the test's own model of the image (colotest/disk.py):
reads through NBD must show every write acknowledged so far, and bad
input gets clear errors and never changes the image."""

import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402
from colotest.disk import (DISK_MB, NbdClient, Writer, file_sha,  # noqa: E402
                           make_image, qemu_io, sha)


class NbdClients(ct.TempDirTestCase):
    """Stock QEMU's NBD tools against the export, before any migration
    (the disk is written straight)."""

    def test_qemu_tools(self):
        image = os.path.join(self.tmp, "disk.img")
        model = make_image(image, 1)
        sec = ct.DiskSecondary(self.tmp, image)
        try:
            out = subprocess.run(["qemu-nbd", "--list", "-k", sec.nbd_path],
                                 capture_output=True, text=True, timeout=30)
            self.assertIn("export: 'disk0'", out.stdout, out.stderr)
            self.assertIn("size:  %d" % (DISK_MB << 20), out.stdout)
            self.assertIn("flush fua trim zeroes", out.stdout)
            w = Writer(sec.uri, model, 2)
            for _ in range(5):
                w.epoch(6)
            # before COLO the writes are in the image at once
            self.assertEqual(file_sha(image), sha(model))
            ref = os.path.join(self.tmp, "ref.img")
            with open(ref, "wb") as f:
                f.write(model)
            r = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F",
                                "raw", ref, sec.uri], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            info = subprocess.run(["qemu-img", "info", "--output=json",
                                   sec.uri], capture_output=True, text=True,
                                  timeout=30)
            self.assertIn('"virtual-size": %d' % (DISK_MB << 20), info.stdout)

            # a TCP server too (QEMU's nbd:// URI), port chosen by us
            sec.qmp.cmd("nbd-server-stop")
            sec.qmp.cmd("nbd-server-start", addr={
                "type": "inet", "data": {"host": "127.0.0.1", "port": "0"}})
            port = sec.qmp.cmd("x-query-nbd-server")["port"]
            sec.qmp.cmd("nbd-server-add", device="disk0", name="ro")
            qemu_io("nbd://127.0.0.1:%d/ro" % port, "read -P %d 0 1"
                    % model[0], read_only=True)
            # QEMU sees the export is read-only and will not open it rw
            r = subprocess.run(["qemu-io", "-f", "raw", "nbd://127.0.0.1:%d/ro"
                                % port, "-c", "write 0 4096"],
                               capture_output=True, text=True, timeout=30)
            self.assertIn("Permission denied", r.stdout + r.stderr)
            self.assertEqual(file_sha(image), sha(model))

            blocks = sec.qmp.cmd("query-block")
            self.assertEqual(blocks[0]["inserted"]["node-name"], "disk0")
            self.assertEqual(blocks[0]["inserted"]["image"]["virtual-size"],
                             DISK_MB << 20)
            self.assertEqual([e["id"] for e in
                              sec.qmp.cmd("query-block-exports")], ["ro"])
            # QMP errors, in QEMU's words where QEMU has them
            for cmd, args, want in (
                    ("nbd-server-add", {"device": "nope"},
                     "Cannot find device=nope"),
                    ("nbd-server-add", {"device": "disk0", "name": "ro"},
                     "already has export"),
                    ("nbd-server-remove", {"name": "nope"}, "not found"),
                    ("nbd-server-remove", {"name": "ro", "mode": "later"},
                     "does not accept"),
                    ("nbd-server-start", {"addr": {"type": "vsock"}},
                     "not supported"),
                    ("nbd-server-start", {"addr": {"type": "unix", "data": {
                        "path": "/x"}}}, "already running")):
                r = sec.qmp.cmd_raw(cmd, **args)
                self.assertIn(want, r.get("error", {}).get("desc", ""),
                              (cmd, args, r))
            sec.qmp.cmd("nbd-server-remove", name="ro")
            sec.qmp.cmd("nbd-server-stop")
            self.assertIn("not running", sec.qmp.cmd_raw(
                "nbd-server-stop")["error"]["desc"])
        finally:
            self.assertEqual(sec.quit(), 0, sec.stderr())


class NbdBadInput(ct.TempDirTestCase):
    """Broken NBD from a raw socket: errors or a closed connection, a
    reason on stderr, the image untouched, the server serving on."""

    def test_bad_input(self):
        image = os.path.join(self.tmp, "disk.img")
        model = make_image(image, 3)
        before = sha(model)
        size = DISK_MB << 20
        sec = ct.DiskSecondary(self.tmp, image)
        try:
            # unknown export: GO says so, EXPORT_NAME closes
            c = NbdClient(sec.nbd_path)
            typ, msg = c.go(b"nope")[-1]
            self.assertEqual(typ, 0x80000006)
            self.assertIn(b"not present", msg)
            c.option(1, b"nope")
            self.assertTrue(c.closed())
            # malformed GO, oversized option, unknown option, bad magic
            c = NbdClient(sec.nbd_path)
            c.option(7, b"\0\0\0\xff" + b"x")
            self.assertEqual(c.reply()[0], 0x80000003)
            c.option(7, b"x" * 5000)
            self.assertEqual(c.reply()[0], 0x80000009)
            c.option(99)
            self.assertEqual(c.reply()[0], 0x80000001)
            c.option(8)         # structured replies: not offered
            self.assertEqual(c.reply()[0], 0x80000001)
            c.option(5)         # STARTTLS without TLS set up
            self.assertEqual(c.reply()[0], 0x80000002)
            c.s.sendall(b"BADMAGIC" + bytes(8))
            self.assertTrue(c.closed())
            # unknown client flags
            c = NbdClient(sec.nbd_path, flags=0x80)
            self.assertTrue(c.closed())

            # transmission: out of range, oversized, unknown, bad magic
            c = NbdClient(sec.nbd_path)
            self.assertEqual(c.go()[-1][0], 1)
            c.request(0, size - 100, 4096)
            self.assertEqual(c.simple_reply(4096)[0], 22)       # EINVAL
            c.request(1, size, 4096, b"x" * 4096)
            self.assertEqual(c.simple_reply()[0], 28)           # ENOSPC
            c.request(1, (1 << 64) - 512, 1024, b"x" * 1024)
            self.assertEqual(c.simple_reply()[0], 28)
            c.request(0, 0, 64 << 20)
            self.assertEqual(c.simple_reply()[0], 75)           # EOVERFLOW
            c.request(9, 0, 0)
            self.assertEqual(c.simple_reply()[0], 22)
            c.request(1, 0, 16, b"y" * 16, flags=0x40)          # bad flag
            self.assertEqual(c.simple_reply()[0], 22)
            c.request(0, 4096, 100)
            err, data = c.simple_reply(100)
            self.assertEqual((err, data), (0, bytes(model[4096:4196])))
            c.request(1, 0, 64 << 20)       # a write too large to read
            self.assertEqual(c.simple_reply()[0], 75)
            self.assertTrue(c.closed())
            c = NbdClient(sec.nbd_path)
            c.go()
            c.request(0, 0, 16, magic=0x12345678)
            self.assertTrue(c.closed())
            # gone in the middle of a write: nothing of it lands
            c = NbdClient(sec.nbd_path)
            c.go()
            c.request(1, 8192, 65536, b"z" * 30000)
            c.close()
            # a read-only export refuses writes
            sec.qmp.cmd("nbd-server-add", device="disk0", name="ro")
            c = NbdClient(sec.nbd_path)
            c.go(b"ro")
            c.request(1, 0, 16, b"w" * 16)
            self.assertEqual(c.simple_reply()[0], 1)            # EPERM
            c.request(4, 0, 4096)
            self.assertEqual(c.simple_reply()[0], 1)
            c.close()
            # a client that says nothing is dropped after the handshake
            # timeout; others are served meanwhile
            idle = socket.socket(socket.AF_UNIX)
            idle.connect(sec.nbd_path)
            qemu_io(sec.uri, "read -P %d 0 1" % model[0])
            time.sleep(0.3)
            self.assertEqual(file_sha(image), before)
            log = sec.stderr()
            for want in ("unknown export 'nope'", "bad option magic",
                         "unknown client flags", "beyond the end of the "
                         "export", "bad request magic", "gone in the middle "
                         "of a WRITE", "WRITE of 67108864 bytes (limit",
                         "unknown command 9"):
                self.assertIn(want, log)
            ct.wait_for(lambda: idle.recv(1) == b"", 20,
                        "the idle client to be dropped")
            idle.close()
            # every close says why: the malformed GO and the idle client's
            # handshake deadline too
            log = sec.stderr()
            for want in ("malformed NBD_OPT_GO request",
                         "handshake ended before the client's flags: "
                         "deadline passed"):
                self.assertIn(want, log)
            self.assertIsNone(sec.proc.poll())
        finally:
            self.assertEqual(sec.quit(), 0, sec.stderr())

    def test_bad_blockdev(self):
        image = os.path.join(self.tmp, "odd.img")
        with open(image, "wb") as f:
            f.write(b"x" * 1000)
        for spec, want in (
                ("driver=qcow2,node-name=d,filename=" + image, "driver"),
                ("driver=file,node-name=9d,filename=" + image, "node-name"),
                ("driver=file,node-name=d", "no filename"),
                ("driver=file,node-name=d,filename=/nonexistent/x",
                 "Could not open"),
                ("driver=file,node-name=d,filename=" + image,
                 "multiple of 512"),
                ("driver=file,node-name=d,filename=%s,bogus=1" % image,
                 "unknown option 'bogus'"),
                ('{"driver": "file", "node-name": "d"', "-blockdev")):
            r = subprocess.run([ct.SECONDARY, "-incoming", "defer",
                                "-ram-dir", os.path.join(self.tmp, "r"),
                                "-blockdev", spec], capture_output=True,
                               text=True, timeout=20)
            self.assertEqual(r.returncode, 1, spec)
            self.assertIn(want, r.stderr, spec)


class NbdTls(ct.TempDirTestCase):
    """nbd-server-start with tls-creds (and tls-authz), as QEMU's: qemu-io
    with the client certificate gets in; a plain client, and a client
    whose name the authz does not list, do not, and write nothing."""

    def test_tls(self):
        certs = ct.make_tls_certs(os.path.join(self.tmp, "certs"))
        image = os.path.join(self.tmp, "disk.img")
        model = make_image(image, 12)
        obj = "tls-creds-x509,id=tls0,dir=%s,endpoint=%%s,verify-peer=on"
        sec = ct.Secondary(self.tmp, extra=[
            "-object", obj % certs["server"] % "server",
            "-object", "authz-simple,id=auth0,identity=CN=client",
            "-blockdev", "driver=file,node-name=disk0,filename=" + image])
        try:
            path = os.path.join(self.tmp, "nbd.sock")
            sec.qmp.cmd("nbd-server-start", addr={
                "type": "unix", "data": {"path": path}},
                **{"tls-creds": "tls0", "tls-authz": "auth0"})
            sec.qmp.cmd("nbd-server-add", device="disk0", writable=True)

            def client(cert_dir, *cmds):
                return subprocess.run(
                    ["qemu-io", "--object", obj % cert_dir % "client",
                     "--image-opts", "driver=raw,file.driver=nbd,"
                     "file.server.type=unix,file.server.path=%s,"
                     "file.export=disk0,file.tls-creds=tls0,"
                     "file.tls-hostname=localhost" % path]
                    + [a for c in cmds for a in ("-c", c)],
                    capture_output=True, text=True, timeout=60)

            r = client(certs["client"], "write -P 33 4096 8192",
                       "read -P 33 4096 8192")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertNotIn("failed", r.stdout + r.stderr)
            model[4096:12288] = b"\x21" * 8192
            self.assertEqual(file_sha(image), sha(model))
            r = subprocess.run(["qemu-io", "-f", "raw", "nbd+unix:///disk0?"
                                "socket=" + path, "-c", "write 0 4096"],
                               capture_output=True, text=True, timeout=60)
            self.assertIn("TLS", r.stdout + r.stderr)
            r = client(certs["intruder"], "write 0 4096")
            self.assertNotEqual(r.returncode, 0, r.stdout)
            self.assertEqual(file_sha(image), sha(model))
            self.assertIn("TLS handshake failed", sec.stderr())
        finally:
            self.assertEqual(sec.quit(), 0, sec.stderr())


class DiskPrimaryTls(ct.TempDirTestCase):
    """colo-primary --tls-creds protects the disk too: stock QEMU 10.0 gets
    a tls-creds-x509 object on the same folder and mirrors over TLS into
    an NBD server that requires it; the standby image equals the VM's at
    every checkpoint (--verify-disk)."""

    def test_mirror_over_tls(self):
        ct.require_qemu("10.0")
        certs = ct.make_tls_certs(os.path.join(self.tmp, "certs"))
        obj = "tls-creds-x509,id=tls0,dir=%s,endpoint=%s,verify-peer=on"
        disk = os.path.join(self.tmp, "vm-disk.img")
        make_image(disk, 13)
        standby = os.path.join(self.tmp, "standby.img")
        with open(standby, "wb") as f:
            f.truncate(DISK_MB << 20)
        vm = ct.Qemu("10.0", self.tmp, mem_mb=64, bios=ct.HALT_BIOS, extra=[
            "-blockdev", "driver=raw,node-name=disk0,file.driver=file,"
            "file.filename=" + disk, "-device", "virtio-blk-pci,drive=disk0"])
        sdir = os.path.join(self.tmp, "sec")
        os.makedirs(sdir)
        sec = ct.Secondary(sdir, extra=[
            "-object", obj % (certs["server"], "server"),
            "-blockdev", "driver=file,node-name=disk0,filename=" + standby])
        try:
            vm.qmp.close()
            sec.qmp.set_caps(**{"x-colo": True})
            sec.qmp.cmd("migrate-set-parameters", **{"tls-creds": "tls0"})
            sec.qmp.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
            port = sec.qmp.cmd("query-migrate")["socket-address"][0]["port"]
            nbd = os.path.join(sdir, "nbd.sock")
            sec.qmp.cmd("nbd-server-start", addr={
                "type": "unix", "data": {"path": nbd}},
                **{"tls-creds": "tls0"})
            sec.qmp.cmd("nbd-server-add", device="disk0", writable=True)
            r = subprocess.run([
                os.environ.get("COLO_PRIMARY", os.path.join(
                    ct.BUILD_ROOT, "tools", "colo-primary")),
                "--qmp", vm.qmp_path, "--ram-file", vm.ram_path,
                "--object", obj % (certs["client"], "client"),
                "--tls-creds", "tls0", "--tls-hostname", "localhost",
                "--connect", "tcp:127.0.0.1:%s" % port,
                "--disk", "disk0=nbd+unix:///disk0?socket=" + nbd,
                "--verify-disk", "disk0=" + standby, "--checkpoints", "3",
                "--no-net-buffer"], capture_output=True, text=True,
                timeout=300)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("mirrored to nbd+unix:///disk0?socket=%s over TLS"
                          % nbd, r.stdout)
            self.assertIn("checkpoint 3:", r.stdout)
            self.assertEqual(file_sha(standby), file_sha(disk))
            # nothing of ours is left in QEMU
            q = ct.QMP(vm.qmp_path)
            try:
                nodes = [n["node-name"] for n in
                         q.cmd("query-named-block-nodes")]
                objs = [o["name"] for o in q.cmd("qom-list",
                                                 path="/objects")]
                self.assertEqual(q.cmd("query-block-jobs"), [])
            finally:
                q.close()
            self.assertFalse([n for n in nodes if n.startswith("colo-")],
                             nodes)
            self.assertNotIn("colo-nbd-tls", objs)
        finally:
            sec.quit()
            vm.kill()


if __name__ == "__main__":
    ct.main()
