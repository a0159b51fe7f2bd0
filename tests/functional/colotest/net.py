"""Network plumbing for tests: loopback proxies and recorders, network
namespaces with bridges and taps, line streams from the guest's
services."""

import os
import shutil
import socket
import subprocess
import threading
import time
import unittest

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
