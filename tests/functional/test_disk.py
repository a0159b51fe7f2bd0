"""Disk replication on colo-secondary (block/colo-disk.c, nbd/server.c),
with stock QEMU's own NBD clients (qemu-io, qemu-img, qemu-nbd) and a
COLO session replayed from the real QEMU 7.2 capture.

The oracle is the test's own model of the image: a bytearray that every
write the test sends is applied to, kept per checkpoint.  Writes sent
after checkpoint k was acknowledged belong to checkpoint k+1: the image
file must hold exactly the model of the last committed checkpoint, reads
through NBD must show every write acknowledged so far, and a colo-secondary
killed inside a commit leaves the image of checkpoint N or N+1, whichever
its record says.  Bad input (a raw socket speaking broken NBD) gets clear
errors and never changes the image."""

import hashlib
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import colodecode  # noqa: E402
import colotest as ct  # noqa: E402

DISK_MB = 16
PAGE = 4096
NBD_OPTS_MAGIC = 0x49484156454F5054
NBD_REP_MAGIC = 0x3e889045565a9
NBD_REQUEST_MAGIC = 0x25609513
NBD_REPLY_MAGIC = 0x67446698


def sha(data):
    return hashlib.sha256(data).hexdigest()


def file_sha(path):
    with open(path, "rb") as f:
        return sha(f.read())


def qemu_io(uri, *cmds, read_only=False):
    args = ["qemu-io", "-f", "raw"] + (["-r"] if read_only else []) + [uri]
    for c in cmds:
        args += ["-c", c]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    if r.returncode or "failed" in out or "error" in out.lower():
        raise AssertionError("qemu-io %s: %s" % (" ".join(cmds), out))
    return out


def make_image(path, seed):
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(DISK_MB << 20))
    with open(path, "wb") as f:
        f.write(data)
    return data


class Writer:
    """Random writes through qemu-io, applied to the model as they go:
    data (unaligned too), zeroes and discards."""

    def __init__(self, uri, model, seed):
        self.uri = uri
        self.model = model
        self.rng = random.Random(seed)

    def epoch(self, n, pages=None):
        cmds = []
        for _ in range(n):
            kind = self.rng.choice(("data", "data", "data", "zero", "trim"))
            if pages is not None:
                # whole distinct pages (the commit copies exactly these)
                off, length = pages.pop() * PAGE, PAGE
                kind = "data"
            else:
                length = self.rng.randint(1, 64 << 10)
                off = self.rng.randrange(0, (DISK_MB << 20) - length)
            pat = self.rng.randrange(1, 256)
            if kind == "data":
                cmds.append("write -P %d %d %d" % (pat, off, length))
                self.model[off:off + length] = bytes([pat]) * length
            elif kind == "zero":
                cmds.append("write -z %d %d" % (off, length))
                self.model[off:off + length] = bytes(length)
            else:
                # qemu-io aligns discards to its request alignment (1)
                cmds.append("discard %d %d" % (off, length))
                self.model[off:off + length] = bytes(length)
        if cmds:
            qemu_io(self.uri, *cmds)


def load_capture():
    with open(os.path.join(ct.DATA, "colo72kvm.p2s.bin"), "rb") as f:
        return colodecode.Session(f.read())


def run_epochs(tc, sec, image, model, seed, check, pages_at=None,
               stop_at=None):
    """Replays the capture into @sec; after checkpoint k is acknowledged
    the image must hold committed[k] (if @check), then the writes of
    checkpoint k+1 go out.  @pages_at: {k: n} writes n distinct whole
    pages in epoch k.  Returns committed (the model per checkpoint)."""
    session = load_capture()
    w = Writer(sec.uri, model, seed)
    committed = [bytes(model)]
    rng = random.Random(seed + 1)

    def on_commit(k):
        if check:
            tc.assertEqual(file_sha(image), sha(committed[k]),
                           "image after checkpoint %d" % k)
        n = (pages_at or {}).get(k + 1)
        if n:
            w.epoch(n, rng.sample(range((DISK_MB << 20) // PAGE), n))
        else:
            w.epoch(rng.randint(1, 5))
        committed.append(bytes(model))

    sock = sec.connect()
    try:
        ct.replay(sock, session, on_commit=on_commit, stop_at=stop_at)
    finally:
        sock.close()
    return committed


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


class NbdClient:
    """Just enough NBD to send what stock clients never would."""

    def __init__(self, path, flags=3):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(10)
        self.s.connect(path)
        hello = ct.recv_exact(self.s, 18, 10)
        assert hello[:8] == b"NBDMAGIC", hello
        self.s.sendall(struct.pack(">I", flags))

    def option(self, opt, data=b""):
        self.s.sendall(struct.pack(">QII", NBD_OPTS_MAGIC, opt, len(data))
                       + data)

    def reply(self):
        magic, opt, typ, n = struct.unpack(">QIII",
                                           ct.recv_exact(self.s, 20, 10))
        assert magic == NBD_REP_MAGIC, hex(magic)
        return typ, ct.recv_exact(self.s, n, 10) if n else b""

    def go(self, name=b"disk0"):
        self.option(7, struct.pack(">I", len(name)) + name + b"\0\0")
        replies = []
        while True:
            typ, data = self.reply()
            replies.append((typ, data))
            if typ == 1 or typ & 0x80000000:
                return replies

    def request(self, typ, off, length, payload=b"", flags=0,
                magic=NBD_REQUEST_MAGIC):
        self.s.sendall(struct.pack(">IHHQQI", magic, flags, typ, 77, off,
                                   length) + payload)

    def simple_reply(self, data_len=0):
        magic, err, cookie = struct.unpack(">IIQ",
                                           ct.recv_exact(self.s, 16, 10))
        assert magic == NBD_REPLY_MAGIC and cookie == 77
        return err, ct.recv_exact(self.s, data_len, 10) if data_len and \
            not err else b""

    def closed(self):
        """True if the server closed the connection (then ours too)."""
        try:
            gone = self.s.recv(1) == b""
        except ConnectionResetError:
            gone = True
        if gone:
            self.s.close()
        return gone

    def close(self):
        self.s.close()


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
