"""Helpers for colo-standby's functional tests: paths, a QMP client,
launching stock QEMU (10.0 from the system, 7.2 unpacked in the build tree)
and colo-secondary, hashing RAM files.  Python standard library only."""

import gzip
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

SOURCE_ROOT = os.environ.get(
    "COLO_SOURCE_ROOT",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_ROOT = os.environ.get("COLO_BUILD_ROOT",
                            os.path.join(SOURCE_ROOT, "build"))
SECONDARY = os.environ.get("COLO_SECONDARY",
                           os.path.join(BUILD_ROOT, "colo-secondary"))
GUEST_BIOS = os.environ.get(
    "COLO_GUEST_BIOS", os.path.join(BUILD_ROOT, "tests", "guest",
                                    "colo-guest.bios"))
HALT_BIOS = os.environ.get(
    "COLO_HALT_BIOS", os.path.join(BUILD_ROOT, "tests", "guest",
                                   "halt.bios"))
TEST_PRIMARY = os.environ.get(
    "COLO_TEST_PRIMARY", os.path.join(BUILD_ROOT, "tools",
                                      "colo-test-primary"))
DATA = os.path.join(SOURCE_ROOT, "tests", "data")
QEMU72_ROOT = os.path.join(BUILD_ROOT, "qemu-7.2")
if not os.path.isdir(QEMU72_ROOT):
    QEMU72_ROOT = os.path.join(SOURCE_ROOT, "build", "qemu-7.2")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def read_manifest():
    """{stream: {block file name: sha256}} from tests/data/ram-manifest.tsv"""
    out = {}
    with open(os.path.join(DATA, "ram-manifest.tsv")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            stream, block, _size, digest = line.rstrip("\n").split("\t")
            out.setdefault(stream, {})[block] = digest
    return out


def wait_for(predicate, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(interval)


class QMP:
    """A minimal QMP client: negotiates, runs commands, keeps events."""

    def __init__(self, path, timeout=30):
        self.path = path
        wait_for(lambda: os.path.exists(path), timeout, "QMP socket " + path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        wait_for(self._try_connect, timeout, "QMP connect " + path)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        self.greeting = self._read()
        while "QMP" not in self.greeting:
            self.greeting = self._read()
        self.next_id = 0
        r = self.cmd_raw("qmp_capabilities")
        assert "return" in r, r

    def _try_connect(self):
        try:
            self.sock.connect(self.path)
            return True
        except OSError:
            return False

    def _read(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd_raw(self, name, /, **args):
        self.next_id += 1
        req = {"execute": name, "id": self.next_id}
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            msg = self._read()
            if "event" in msg:
                self.events.append(msg)
                continue
            # replies carry our id back; anything else (a greeting seen
            # twice on a slow start, say) is not the answer
            if msg.get("id") == self.next_id or (
                    "error" in msg and "id" not in msg):
                return msg

    def cmd(self, name, /, **args):
        r = self.cmd_raw(name, **args)
        if "error" in r:
            raise RuntimeError("QMP %s failed: %s" % (name, r["error"]))
        return r["return"]

    def poll_events(self, timeout=0.0):
        # an overall deadline: a steady stream of events (COLO's STOP and
        # RESUME) must not keep this reading for ever
        deadline = time.monotonic() + max(timeout, 0.001)
        self.sock.settimeout(timeout if timeout > 0 else 0.001)
        try:
            while time.monotonic() < deadline:
                if b"\n" not in self.buf:
                    data = self.sock.recv(65536)
                    if not data:
                        break
                    self.buf += data
                    continue
                msg = self._read()
                if "event" in msg:
                    self.events.append(msg)
        except (socket.timeout, BlockingIOError):
            pass
        finally:
            self.sock.settimeout(30)
        return self.events

    def wait_event(self, name, timeout=30, match=None):
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if ev["event"] == name and (match is None or match(ev)):
                    self.events.remove(ev)
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no %s event" % name)
            self.poll_events(min(left, 0.2))

    def read_to_eof(self, timeout=20):
        """Keeps every event until the server closes the connection (after
        "quit"): nothing it emitted before exiting is missed."""
        self.sock.settimeout(timeout)
        try:
            while True:
                msg = self._read()
                if "event" in msg:
                    self.events.append(msg)
        except (EOFError, ConnectionResetError):
            pass

    def set_caps(self, **caps):
        self.cmd("migrate-set-capabilities", capabilities=[
            {"capability": k.replace("_", "-"), "state": v}
            for k, v in caps.items()])

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


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


# Exit status of a test script whose prerequisites are missing: meson
# counts it as SKIP (not as passed), and `make check` fails on any SKIP.
EXIT_SKIP = 77


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


LINUX_GUEST = os.environ.get("COLO_LINUX_GUEST",
                             os.path.join(BUILD_ROOT, "linux-guest"))
if not os.path.isdir(LINUX_GUEST):      # the sanitizer build shares it
    LINUX_GUEST = os.path.join(SOURCE_ROOT, "build", "linux-guest")


def require_linux_guest():
    """(kernel, initrd) of the Linux guest; skips (visibly) without it."""
    kernel = os.path.join(LINUX_GUEST, "vmlinuz")
    initrd = os.path.join(LINUX_GUEST, "initramfs.cpio.gz")
    if not (os.path.exists(kernel) and os.path.exists(initrd)):
        raise unittest.SkipTest("the Linux guest is missing in %s "
                                "(scripts/build-guest.sh)" % LINUX_GUEST)
    return kernel, initrd


def cpio_newc(entries):
    """A newc cpio archive of (path, mode, data) entries."""
    out = b""
    for ino, (path, mode, data) in enumerate(entries, 1):
        name = path.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0]
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        out += hdr + name
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
    trailer = b"TRAILER!!!\0"
    out += b"070701" + b"".join(b"%08X" % f for f in
                                [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
                                 len(trailer), 0]) + trailer
    out += b"\0" * (-len(out) % 512)
    return out


def run_in_linux_guest(workdir, files, run, timeout, mem_mb=256, smp=2):
    """Boots the Linux guest (TCG) with @files ({path: bytes}, executables)
    added to its initramfs and colo.run=@run; returns (the finished QEMU
    process, what the guest printed on its serial port)."""
    kernel, initrd = require_linux_guest()
    qemu, env = qemu_command("10.0")
    extra = cpio_newc([(path, 0o100755, data)
                       for path, data in sorted(files.items())])
    # The kernel takes concatenated archives; later files win.
    combined = os.path.join(workdir, "initrd-%s.gz" % run)
    with open(initrd, "rb") as f, open(combined, "wb") as out:
        out.write(f.read())
        out.write(gzip.compress(extra))
    serial = os.path.join(workdir, "serial-%s.log" % run)
    argv = qemu + ["-nodefaults", "-display", "none", "-accel", "tcg",
                   "-m", str(mem_mb), "-smp", str(smp), "-kernel", kernel,
                   "-initrd", combined, "-append",
                   "console=ttyS0 panic=-1 colo.run=" + run,
                   "-serial", "file:" + serial, "-no-reboot"]
    p = subprocess.run(argv, env=env, timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with open(serial, errors="replace") as f:
        return p, f.read()


def main():
    """unittest.main for the test scripts, with meson's exit statuses:
    0 all passed, 1 a failure or error, 77 something was skipped (each
    reason is printed, so a missing QEMU is never a silent pass)."""
    prog = unittest.main(verbosity=2, exit=False)
    r = prog.result
    if not r.wasSuccessful():
        raise SystemExit(1)
    if r.skipped or r.testsRun == 0:
        for test, why in r.skipped:
            print("SKIP: %s: %s" % (test.id(), why), file=sys.stderr)
        if r.testsRun == 0:
            print("SKIP: no test ran", file=sys.stderr)
        raise SystemExit(EXIT_SKIP)
    raise SystemExit(0)


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
        argv = [SECONDARY, "-name", name, "-ram-dir", self.ram_dir,
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


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def complete_lines(text):
    """The lines of @text that have their newline: QEMU writes the serial
    port a character at a time, so the last line of a file read while
    the guest prints may be cut ("colo-guest C=01" for C=01d10000)."""
    return text.split("\n")[:-1]


def guest_counters(serial_path):
    """The counters the colo-guest printed ("colo-guest C=XXXXXXXX") so
    far on its serial port, in order, complete lines only; [] before the
    file exists."""
    try:
        with open(serial_path, errors="replace") as f:
            return [int(line.split("C=")[1], 16)
                    for line in complete_lines(f.read()) if "C=" in line]
    except (FileNotFoundError, ValueError, IndexError):
        return []


def kill_pid(pid):
    """SIGKILL a process we did not start ourselves (a resumed QEMU)."""
    if pid:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def run_once(stream, ram_dir, extra=(), timeout=120):
    """colo-secondary --once on a file; returns (exit code, stderr)."""
    argv = [SECONDARY, "--once", "-ram-dir", ram_dir] + list(extra) + \
           ["-incoming", "file:" + stream]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stderr.decode(errors="replace")


def ram_files(ram_dir):
    """{relative block file: sha256} of every RAM file in @ram_dir."""
    out = {}
    for root, _dirs, files in os.walk(ram_dir):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, ram_dir)
            if rel in ("device-state.bin", "vmdesc.json") or \
                    rel.startswith("colo-"):
                continue
            out[rel] = sha256_file(path)
    return out


class TempDirTestCase(unittest.TestCase):
    def setUp(self):
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.tmp = tempfile.mkdtemp(prefix="colo-test-", dir=base)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class LoopbackProxy:
    """Listens on 127.0.0.1 (self.port) for one connection, which the
    subclass's _run() serves towards @target_port on its own thread."""

    def __init__(self, target_port):
        import threading
        self.target_port = int(target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()


class TcpRecorder(LoopbackProxy):
    """A TCP proxy on 127.0.0.1 that forwards one connection to
    @target_port, both ways, and keeps a copy of the source's bytes."""

    def __init__(self, target_port, record_path):
        self.record_path = record_path
        LoopbackProxy.__init__(self, target_port)

    def _pump(self, a, b, record=None):
        try:
            while True:
                data = a.recv(1 << 16)
                if not data:
                    break
                if record:
                    record.write(data)
                b.sendall(data)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _run(self):
        import threading
        src, _ = self.listener.accept()
        dst = socket.create_connection(("127.0.0.1", self.target_port))
        with open(self.record_path, "wb") as rec:
            back = threading.Thread(target=self._pump, args=(dst, src),
                                    daemon=True)
            back.start()
            self._pump(src, dst, rec)
            back.join(30)
        src.close()
        dst.close()
        self.listener.close()

    def wait(self, timeout=60):
        self.thread.join(timeout)


def qemu_load_reference(version, workdir, machine, mem_mb, stream_path,
                        bios=None):
    """Loads @stream_path into a paused stock QEMU of @version and returns
    the sha256 of its RAM and its per-page contents (bytes)."""
    ref_dir = os.path.join(workdir, "reference")
    os.makedirs(ref_dir, exist_ok=True)
    q = Qemu(version, ref_dir, machine=machine, mem_mb=mem_mb, bios=bios,
             incoming="exec:cat " + stream_path, extra=["-S"])
    try:
        def done():
            st = q.qmp.cmd("query-migrate").get("status")
            if st == "failed":
                raise AssertionError("QEMU %s could not load the stream"
                                     % version)
            return st == "completed"
        wait_for(done, 120, "the reference QEMU load", 0.05)
        with open(q.ram_path, "rb") as f:
            return f.read()
    finally:
        q.quit()


def recv_exact(sock, n, timeout=30):
    """@n bytes from @sock (timeout None: wait as long as it takes)."""
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed after %d of %d reply bytes"
                           % (len(buf), n))
        buf += chunk
    return buf


def replay(sock, session, stop_at=None, on_commit=None):
    """Plays a decoded COLO capture (colodecode.Session) into @sock like
    its primary did: each segment, then wait for the replies it earned.
    With @stop_at, sends nothing from that byte offset on.  Returns the
    reply bytes received.  @on_commit(k) runs after checkpoint k (0 = the
    initial migration) has been acknowledged."""
    replies = b""
    committed = 0
    for start, end, expect in session.segments:
        if stop_at is not None and end > stop_at:
            if stop_at > start:
                sock.sendall(session.data[start:stop_at])
            break
        sock.sendall(session.data[start:end])
        if expect:
            got = recv_exact(sock, len(expect))
            replies += got
            if got != expect:
                raise AssertionError("reply %r, expected %r after offset %#x"
                                     % (got, expect, end))
            if expect[-4:] in (b"\x00\x00\x00\x00", b"\x00\x00\x00\x06"):
                if on_commit:
                    on_commit(committed)
                committed += 1
    return replies


def read_record(path):
    """A colo-checkpoint record or colo-journal (migration/colo-journal.c),
    decoded here independently: {number, machine, blocks, devices}."""
    with open(path, "rb") as f:
        rec = f.read()
    assert rec[:8] == b"COLOCKPT", path
    assert zlib.crc32(rec[:-4]) == int.from_bytes(rec[-4:], "big"), path
    p = 8
    version, flags = struct.unpack_from(">II", rec, p)
    p += 8
    number = struct.unpack_from(">Q", rec, p)[0]
    p += 8
    machine = rec[p + 1:p + 1 + rec[p]].decode()
    p += 1 + rec[p]
    _section, nblocks = struct.unpack_from(">II", rec, p)
    p += 8
    blocks = {}
    for _ in range(nblocks):
        name = rec[p + 1:p + 1 + rec[p]].decode()
        p += 1 + rec[p]
        blocks[name] = struct.unpack_from(">Q", rec, p)[0]
        p += 16
        if flags & 1:
            p += 8 + struct.unpack_from(">Q", rec, p)[0]
    dlen = struct.unpack_from(">Q", rec, p)[0]
    p += 8
    devices = rec[p:p + dlen]
    p += dlen
    disks = {}
    if version == 2:
        # u32 count; per disk: str8 node, u32+filename, u64 size, and in a
        # journal u32+cache file, u64 n, n x (u64 page, u64 slot)
        ndisks = struct.unpack_from(">I", rec, p)[0]
        p += 4
        for _ in range(ndisks):
            node = rec[p + 1:p + 1 + rec[p]].decode()
            p += 1 + rec[p]
            n = struct.unpack_from(">I", rec, p)[0]
            filename = rec[p + 4:p + 4 + n].decode()
            p += 4 + n
            size = struct.unpack_from(">Q", rec, p)[0]
            p += 8
            extents = []
            if flags & 1:
                n = struct.unpack_from(">I", rec, p)[0]
                p += 4 + n
                n = struct.unpack_from(">Q", rec, p)[0]
                p += 8
                extents = [struct.unpack_from(">QQ", rec, p + 16 * i)
                           for i in range(n)]
                p += 16 * n
            disks[node] = {"filename": filename, "size": size,
                           "extents": extents}
    assert p + 4 == len(rec), path
    return {"version": version, "number": number, "machine": machine,
            "blocks": blocks, "devices": devices, "disks": disks}


def record_devices(ram_dir):
    """The device state of the checkpoint the RAM folder holds."""
    return read_record(os.path.join(ram_dir, "colo-checkpoint"))["devices"]


def block_file(name):
    return name.lstrip("/")


def ram_matches(ram_dir, digests):
    """{block file: (ours, want)} for every block that differs."""
    bad = {}
    for name, want in digests.items():
        path = os.path.join(ram_dir, block_file(name))
        got = sha256_file(path) if os.path.exists(path) else None
        if got != want:
            bad[block_file(name)] = (got, want)
    return bad


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


def make_colo_initial_stream(workdir, version="10.0", machine="pc",
                             mem_mb=64, bios=None):
    """A real initial COLO stream: stock QEMU, stopped, with x-colo on,
    migrated to a file (QEMU 10.0.2 cannot enter COLO itself, so it simply
    completes; the stream carries ENABLE_COLO all the same)."""
    path = os.path.join(workdir, "initial-%s-%s.mig" % (version, machine))
    src_dir = os.path.join(workdir, "initial-src")
    os.makedirs(src_dir, exist_ok=True)
    q = Qemu(version, src_dir, machine=machine, mem_mb=mem_mb,
             bios=bios or HALT_BIOS)
    try:
        # Let the guest reach its resting state before it is stopped and
        # saved: halted for halt.bios, printing for the colo-guest.
        if bios in (None, HALT_BIOS):
            wait_for(lambda: "HLT=1" in q.qmp.cmd(
                "human-monitor-command", **{"command-line":
                                            "info registers"}),
                     30, "the halt guest to halt")
        else:
            wait_for(lambda: "C=" in q.serial(), 60, "the guest to run")
        q.qmp.cmd("stop")
        q.qmp.set_caps(**{"x-colo": True})
        q.qmp.cmd("migrate", uri="exec:cat > " + path)
        wait_for(lambda: q.qmp.cmd("query-migrate").get("status") ==
                 "completed", 60, "the initial stream", 0.05)
    finally:
        q.quit()
    return path


class NetNs:
    """A network namespace of the test's own, with a bridge br0 (address
    @addr) and taps on it: the only place the tests send packets to.
    Removed by close()."""

    def __init__(self, tag, addr="10.77.0.1/24"):
        self.name = "colo%d-%s" % (os.getpid(), tag)
        self.addr = addr
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.ip("link", "set", "lo", "up")
        self.ip("link", "add", "br0", "type", "bridge")
        self.ip("addr", "add", addr, "dev", "br0")
        self.ip("link", "set", "br0", "up")

    def prefix(self):
        """The argv prefix that runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def ip(self, *args):
        p = subprocess.run(self.prefix() + ["ip"] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise RuntimeError("ip %s in %s: %s" % (" ".join(args),
                                                     self.name,
                                                     p.stderr.decode()))
        return p.stdout.decode()

    def add_tap(self, name, multi_queue=False):
        self.ip("tuntap", "add", "dev", name, "mode", "tap",
                *(["multi_queue"] if multi_queue else []))
        self.ip("link", "set", name, "master", "br0")
        self.ip("link", "set", name, "up")
        return name

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name],
                       stderr=subprocess.DEVNULL)


def require_netns():
    """Skips (visibly) where network namespaces and taps cannot be made."""
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or \
            not shutil.which("ip"):
        raise unittest.SkipTest("network namespaces with taps need root, "
                                "/dev/net/tun and iproute2")


def shut_down(*socks):
    """Shuts each socket down both ways (closed ones too): this also wakes
    a thread blocked reading it, whose system call would otherwise keep
    the connection open."""
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def socket_lines(sock):
    """The newline-framed messages of @sock (without the newline) until
    the peer closes it."""
    buf = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line


def protect_with_oracle(vm, workdir, port, primary):
    """colo-primary (@primary) protecting @vm (a Qemu running the
    colo-guest) into the secondary on @port, through a PrimaryOracle that
    records the VM's RAM and registers at every pause; QEMU's pid is given,
    so the default tracking (uffd-wp where the kernel has it) is used.
    Returns (oracle, colo-primary's Popen)."""
    wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
    vm.qmp.close()
    oracle = PrimaryOracle(vm.qmp_path, vm.ram_path,
                           os.path.join(workdir, "oracle.qmp"))
    agent = subprocess.Popen(
        [primary, "--qmp", oracle.path, "--ram-file", vm.ram_path,
         "--connect", "tcp:127.0.0.1:%d" % port, "--qemu-pid",
         str(vm.proc.pid), "--x-checkpoint-delay", "100", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return oracle, agent


class PrimaryOracle:
    """The test's own record of the primary VM at every checkpoint pause.

    A QMP proxy between colo-primary and the primary QEMU: colo-primary is
    given @path instead of QEMU's socket.  When colo-primary sends "cont"
    (the VM is stopped and its device state captured), the proxy first
    takes the SHA-256 of the VM's RAM file and QEMU's own "info registers",
    through its own commands on the same connection, and only then lets
    the "cont" through.  When colo-primary sends "stop", the previous
    checkpoint has been acknowledged as loaded (VMSTATE_LOADED or, for the
    initial sync, CHECKPOINT_READY) and the secondary is idle: @before_stop
    (the pause number) runs before the stop goes on, so a test can compare
    the secondary's RAM file with the pause that produced it; given
    @secondary_ram (the secondary's main RAM file), the oracle does that
    itself at every stop and counts it in .verified.

    colo-primary pauses the VM twice for the initial sync (the stream head,
    then the pages changed while RAM was sent), then once per checkpoint:
    the RAM of committed checkpoint n (query-colo-status x-checkpoints,
    0 = the initial state) is pauses[n + INITIAL_PAUSES - 1].

    Nothing here uses colo-standby code: the oracle is QEMU and hashlib."""

    INITIAL_PAUSES = 2

    def __init__(self, qemu_qmp_path, ram_path, path, before_stop=None,
                 secondary_ram=None):
        import threading
        self.upstream = qemu_qmp_path
        self.ram_path = ram_path
        self.path = path
        self.before_stop = before_stop
        self.secondary_ram = secondary_ram
        self.verified = 0
        self.pauses = []        # [{"ram": sha256, "regs": {...}}]
        self.errors = []        # exceptions raised in the hooks
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(4)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def committed(self, n):
        """The pause whose state checkpoint @n committed."""
        i = n + self.INITIAL_PAUSES - 1
        if i >= len(self.pauses):
            raise AssertionError("checkpoint %d committed, but the primary "
                                 "was paused only %d times"
                                 % (n, len(self.pauses)))
        return self.pauses[i]

    def _accept(self):
        import threading
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,),
                             daemon=True).start()

    def close(self):
        try:
            self.listener.close()
        except OSError:
            pass

    def _serve(self, client):
        import queue
        import threading
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            up.connect(self.upstream)
        except OSError:
            client.close()
            return
        replies = queue.Queue()

        def downstream():
            # QEMU -> colo-primary, keeping the replies to our own ids
            try:
                for line in socket_lines(up):
                    if b'"oracle-' in line:
                        replies.put(json.loads(line))
                    else:
                        client.sendall(line + b"\n")
            except OSError:
                pass
            replies.put(None)
            shut_down(client, up)

        seq = [0]

        def ask(cmd, **args):
            seq[0] += 1
            req = {"execute": cmd, "id": "oracle-%d" % seq[0]}
            if args:
                req["arguments"] = args
            up.sendall(json.dumps(req).encode() + b"\n")
            r = replies.get(timeout=30)
            if r is None:
                raise EOFError("QEMU went away")
            if "error" in r:
                raise RuntimeError("QMP %s: %s" % (cmd, r["error"]))
            return r["return"]

        t = threading.Thread(target=downstream, daemon=True)
        t.start()
        try:
            for line in socket_lines(client):
                try:
                    cmd = json.loads(line).get("execute")
                except ValueError:
                    cmd = None
                try:
                    if cmd == "cont":
                        self._record(ask)
                    elif cmd == "stop":
                        self._before_stop(len(self.pauses))
                except EOFError:
                    pass
                except Exception as e:  # reported by check()
                    self.errors.append(e)
                up.sendall(line + b"\n")
        except OSError:
            pass
        shut_down(client, up)       # wakes the thread reading QEMU too
        t.join(10)
        client.close()
        up.close()

    def _before_stop(self, pauses):
        if self.secondary_ram and pauses >= self.INITIAL_PAUSES:
            self.verify_secondary(pauses - self.INITIAL_PAUSES)
        if self.before_stop:
            self.before_stop(pauses)

    def verify_secondary(self, n):
        """The secondary's RAM file must be the primary's RAM at the pause
        of checkpoint @n (call it while the secondary is idle)."""
        got = sha256_file(self.secondary_ram)
        want = self.committed(n)["ram"]
        if got != want:
            raise AssertionError("after checkpoint %d the secondary's RAM "
                                 "is not the primary's" % n)
        self.verified += 1

    def _record(self, ask):
        regs = parse_registers(ask("human-monitor-command",
                                   **{"command-line": "info registers"}))
        status = ask("query-status")["status"]
        ram = sha256_file(self.ram_path)
        with self.lock:
            self.pauses.append({"ram": ram, "regs": regs,
                                "status": status})

    def check(self):
        """Raises the first error a hook met."""
        if self.errors:
            raise self.errors[0]


# "info registers" fields that describe the CPU's architectural state.
# Left out: TCG's lazy condition-code cache (CCS/CCD/CCO, folded into
# RFL on save) and the halted flag's siblings that QEMU recomputes.
_REG_SKIP = ("CCS", "CCD", "CCO")


def parse_registers(text):
    """{name: value} from QEMU's "info registers" of one CPU."""
    import re
    regs = {}
    for line in text.splitlines():
        for m in re.finditer(r"([A-Z][A-Z0-9]*)\s*=\s*([0-9a-fA-F]+"
                             r"(?: [0-9a-fA-F]+ [0-9a-fA-F]+ [0-9a-fA-F]+)?)",
                             line):
            name, value = m.group(1), m.group(2)
            if name in _REG_SKIP:
                continue
            regs.setdefault(name, value)
    return regs


class CommitWatch(LoopbackProxy):
    """A TCP proxy between a COLO primary and a secondary on 127.0.0.1
    that stops each acknowledgement of a commit on its way back (the
    secondary's CHECKPOINT_READY for the initial state, VMSTATE_LOADED
    for checkpoint k): @on_commit(k) runs while the primary has not been
    told yet, and only then is the message forwarded.  A secondary that
    answers before its RAM files hold the checkpoint is caught in the act.
    Errors from @on_commit are kept in .errors."""

    def __init__(self, target_port, on_commit):
        self.on_commit = on_commit
        self.errors = []
        self.commits = 0
        LoopbackProxy.__init__(self, target_port)

    def _forward(self, a, b):
        try:
            while True:
                data = a.recv(1 << 16)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        shut_down(a, b)

    def _run(self):
        import threading
        src, _ = self.listener.accept()
        dst = socket.create_connection(("127.0.0.1", self.target_port))
        for s in (src, dst):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = threading.Thread(target=self._forward, args=(src, dst),
                             daemon=True)
        t.start()
        try:
            # the secondary's direction: bare be32 messages
            while True:
                msg = recv_exact(dst, 4, timeout=None)
                if msg in (b"\x00\x00\x00\x00", b"\x00\x00\x00\x06"):
                    try:
                        self.on_commit(self.commits)
                    except Exception as e:     # reported by check()
                        self.errors.append(e)
                    self.commits += 1
                src.sendall(msg)
        except (OSError, EOFError):
            pass
        shut_down(src, dst)
        t.join(10)
        src.close()
        dst.close()
        self.listener.close()

    def check(self):
        if self.errors:
            raise self.errors[0]


def registers_diff(got, want):
    """{register: (got, want)} for every register that differs."""
    return {k: (got.get(k), want.get(k)) for k in set(got) | set(want)
            if got.get(k) != want.get(k)}


PRIMARY_AGENT = os.environ.get("COLO_PRIMARY", os.path.join(
    BUILD_ROOT, "tools", "colo-primary"))
NETCLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "netclient.py")
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
                 run="service"):
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
                           "colo.ip=%s/24" % (run, GUEST_IP),
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
                stdin=subprocess.DEVNULL)
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


class LineStream:
    """Reads a netclient "lines" client's output on a thread, each line
    with the moment it came."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(),
                                   raw.decode(errors="replace").rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_lines(self, n, timeout):
        """Until @n lines have come (True) or @timeout (False)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.lines) < n:
                left = deadline - time.monotonic()
                if left <= 0 or not self.thread.is_alive():
                    return len(self.lines) >= n
                self.cond.wait(left)
            return True

    def text(self):
        with self.cond:
            return [t for _, t in self.lines]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.thread.join(10)
        self.proc.stdout.close()
        self.proc.stderr.close()


def service_stream_problems(lines):
    """What a client of the guest's service (run-lines: "seq N NOW PREV")
    saw wrong: a malformed, missing, repeated or reordered line, or a
    chain break (PREV is not the NOW of the line before: lines from two
    executions of the guest, i.e. a rollback it was shown)."""
    problems = []
    prev_now = None
    for i, line in enumerate(lines):
        if line.startswith("netclient:"):
            continue
        p = line.split()
        if len(p) != 4 or p[0] != "seq" or not all(x.isdigit()
                                                     for x in p[1:]):
            problems.append("line %d malformed: %r" % (i + 1, line))
            prev_now = None
            continue
        seq, now, prev = int(p[1]), int(p[2]), int(p[3])
        if seq != i + 1:
            problems.append("line %d has seq %d" % (i + 1, seq))
        if prev_now is not None and prev != prev_now:
            problems.append("line %d (seq %d) follows NOW=%d, not the %d "
                            "the client saw before" % (i + 1, seq, prev,
                                                        prev_now))
        if prev_now is not None and now <= prev_now:
            problems.append("line %d goes back in time" % (i + 1))
        prev_now = now
    return problems


def _openssl(*args, cwd=None):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (args[0], p.stderr.decode()))


def _tls_ca(d, cn):
    os.makedirs(d, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
             "-subj", "/CN=" + cn, "-keyout", os.path.join(d, "ca-key.pem"),
             "-out", os.path.join(d, "ca-cert.pem"),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return d


def _tls_leaf(ca, out_cert, out_key, cn, server, dates=None,
              san="DNS:localhost,IP:127.0.0.1"):
    """A certificate for @cn signed by CA folder @ca; @dates (start, end as
    YYYYMMDDHHMMSSZ) for one outside its validity; a server's names are
    @san."""
    work = tempfile.mkdtemp(prefix="tls-", dir=os.path.dirname(out_cert))
    ext = os.path.join(work, "ext.cnf")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=%s\n" % ("serverAuth" if server
                                           else "clientAuth"))
        if server:
            f.write("subjectAltName=%s\n" % san)
    csr = os.path.join(work, "req.csr")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + cn,
             "-keyout", out_key, "-out", csr)
    if not dates:
        _openssl("x509", "-req", "-in", csr, "-CA",
                 os.path.join(ca, "ca-cert.pem"), "-CAkey",
                 os.path.join(ca, "ca-key.pem"), "-CAcreateserial",
                 "-days", "30", "-extfile", ext, "-out", out_cert)
    else:
        os.makedirs(os.path.join(work, "new"))
        open(os.path.join(work, "index.txt"), "w").close()
        with open(os.path.join(work, "serial"), "w") as f:
            f.write("1000\n")
        cnf = os.path.join(work, "ca.cnf")
        with open(cnf, "w") as f:
            f.write("[ca]\ndefault_ca=d\n[d]\ndatabase=%s/index.txt\n"
                    "new_certs_dir=%s/new\nserial=%s/serial\n"
                    "default_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n"
                    % (work, work, work))
        _openssl("ca", "-batch", "-config", cnf, "-notext",
                 "-cert", os.path.join(ca, "ca-cert.pem"),
                 "-keyfile", os.path.join(ca, "ca-key.pem"),
                 "-startdate", dates[0], "-enddate", dates[1],
                 "-extfile", ext, "-in", csr, "-out", out_cert)
    shutil.rmtree(work)


def make_tls_node_certs(root, addresses):
    """One folder per node of @addresses ({name: IP}) under @root, in
    QEMU's layout, from one CA: ca-cert.pem, a server certificate for the
    node's IP (CN=name) and a client certificate (CN=name-client), as
    tools/ocf/colo's tls_dir wants them.  {name: DIR}."""
    ca = _tls_ca(os.path.join(root, "ca"), "colo-cluster-ca")
    dirs = {}
    for name, ip in addresses.items():
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(ca, "ca-cert.pem"), d)
        _tls_leaf(ca, os.path.join(d, "server-cert.pem"),
                  os.path.join(d, "server-key.pem"), name, True,
                  san="DNS:%s,IP:%s" % (name, ip))
        _tls_leaf(ca, os.path.join(d, "client-cert.pem"),
                  os.path.join(d, "client-key.pem"), name + "-client", False)
        dirs[name] = d
    return dirs


def make_tls_certs(root):
    """Certificates for the TLS tests, made with openssl, in QEMU's file
    layout (tls-creds-x509 dir=): {"server": DIR, "client": DIR, ...}.
    server: CN=localhost (and 127.0.0.1) from CA "colo-test-ca";
    client: CN=client from it; intruder: CN=intruder from it; otherca: a
    CN=client from another CA (its ca-cert.pem holds both CAs, so the
    client itself accepts the server); expired: CN=client, valid in 2020
    only."""
    ca = _tls_ca(os.path.join(root, "ca"), "colo-test-ca")
    other = _tls_ca(os.path.join(root, "ca2"), "another-ca")
    dirs = {}

    def folder(name, cn, server=False, signer=ca, dates=None, cas=(ca,)):
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "ca-cert.pem"), "w") as f:
            for c in cas:
                with open(os.path.join(c, "ca-cert.pem")) as g:
                    f.write(g.read())
        me = "server" if server else "client"
        _tls_leaf(signer, os.path.join(d, me + "-cert.pem"),
                  os.path.join(d, me + "-key.pem"), cn, server, dates)
        dirs[name] = d

    folder("server", "localhost", server=True)
    folder("client", "client")
    folder("intruder", "intruder")
    folder("otherca", "client", signer=other, cas=(ca, other))
    folder("expired", "client", dates=("20200101000000Z", "20200102000000Z"))
    return dirs
