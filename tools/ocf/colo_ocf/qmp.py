"""A QMP client: QEMU's monitor protocol over a UNIX socket, spoken to
QEMU, colo-secondary and colo-primary.  The agent's, and the base of the
tests' client (tests/functional/colotest/qmp.py), which adds waiting for
events; standard library only."""

import json
import socket


class QmpError(Exception):
    """A command failed, or the connection did."""


class QmpClosed(QmpError, EOFError):
    """The server closed the connection."""


class Qmp:
    """One QMP connection: greeting, capabilities negotiated, commands
    run one at a time; events that arrive meanwhile are kept in
    self.events."""

    def __init__(self, path, timeout=10.0):
        self.path = path
        self.buf = b""
        self.events = []
        self.next_id = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self._connect()
        except BaseException:
            self.sock.close()
            raise
        self.greeting = self.read_message()
        while "QMP" not in self.greeting:
            self.greeting = self.read_message()
        self.cmd("qmp_capabilities")

    def _connect(self):
        try:
            self.sock.connect(self.path)
        except OSError as e:
            raise QmpError("%s: %s" % (self.path, e)) from e

    def _recv(self):
        try:
            return self.sock.recv(65536)
        except ConnectionResetError as e:
            raise QmpClosed("%s: %s" % (self.path, e)) from e
        except OSError as e:
            raise QmpError("%s: %s" % (self.path, e)) from e

    def _send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise QmpClosed("%s: %s" % (self.path, e)) from e
        except OSError as e:
            raise QmpError("%s: %s" % (self.path, e)) from e

    def read_message(self):
        """The next message (a reply, an event or the greeting)."""
        while b"\n" not in self.buf:
            data = self._recv()
            if not data:
                raise QmpClosed("%s: connection closed" % self.path)
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError as e:
            raise QmpError("%s: not JSON: %s" % (self.path, e)) from e

    def cmd_raw(self, name, /, **args):
        """Runs @name; its whole reply, "return" or "error"."""
        self.next_id += 1
        req = {"execute": name, "id": self.next_id}
        if args:
            req["arguments"] = args
        self._send(json.dumps(req).encode() + b"\n")
        while True:
            msg = self.read_message()
            if "event" in msg:
                self.events.append(msg)
                continue
            # a reply carries our id back; anything else (a greeting seen
            # twice on a slow start) is not the answer
            if msg.get("id") == self.next_id or (
                    "error" in msg and "id" not in msg):
                return msg

    def failed(self, name, error):
        """The exception for command @name's QMP @error."""
        return QmpError("%s: %s" % (name, error.get("desc")))

    def cmd(self, name, /, **args):
        """Runs @name; its return value, or raises failed()'s error."""
        r = self.cmd_raw(name, **args)
        if "error" in r:
            raise self.failed(name, r["error"])
        return r.get("return")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def qmp_cmd(path, name, timeout=10.0, **args):
    """One command on a connection of its own."""
    q = Qmp(path, timeout)
    try:
        return q.cmd(name, **args)
    finally:
        q.close()
