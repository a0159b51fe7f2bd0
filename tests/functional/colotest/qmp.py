"""A QMP client for stock QEMU and colo-secondary (events kept, waited
for)."""

import json
import os
import socket
import time

from .base import wait_for


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
