"""A QMP client for stock QEMU and colo-secondary (events kept, waited
for), and a raw one that sends bytes as they are (bad input)."""

import json
import os
import socket
import sys
import time

from .base import wait_for
from .paths import SOURCE_ROOT

# the one QMP client of the Python side lives with the OCF agent, which is
# installed without the tests
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tools", "ocf"))
from colo_ocf.qmp import Qmp  # noqa: E402


class QMP(Qmp):
    """The tests' client: waits for the socket, lets timeouts and resets
    through as they are, keeps events and waits for them."""

    def __init__(self, path, timeout=30):
        wait_for(lambda: os.path.exists(path), timeout, "QMP socket " + path)
        self.connect_timeout = timeout
        super().__init__(path, timeout)

    def _connect(self):
        wait_for(self._try_connect, self.connect_timeout,
                 "QMP connect " + self.path)

    def _try_connect(self):
        try:
            self.sock.connect(self.path)
            return True
        except OSError:
            return False

    def _recv(self):
        return self.sock.recv(65536)

    def _send(self, data):
        self.sock.sendall(data)

    def _read(self):
        return self.read_message()

    def failed(self, name, error):
        return RuntimeError("QMP %s failed: %s" % (name, error))

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


def strict_json(line):
    """Python's json, refusing what is not JSON (NaN, Infinity)."""
    def bad(name):
        raise ValueError("not JSON: " + name)
    return json.loads(line, parse_constant=bad)


class RawQmp:
    """A QMP connection that sends bytes as they are."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(30)
        self.buf = b""
        strict_json(self.line())

    def line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("QMP closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def send(self, raw):
        self.sock.sendall(raw + b"\n")
        return strict_json(self.line())

    def close(self):
        self.sock.close()
