"""A bad replication link, in the test: a TCP proxy on 127.0.0.1 that
delays, slows down, stalls and cuts what it forwards (no kernel qdisc
needed, nothing but loopback).

Every connection to self.port is forwarded to @target_port.  In each
direction, a chunk leaves @delay_ms after it arrived and no sooner than
the bytes before it took at @rate_bps (a serialised link); what is in
flight is bounded by the bandwidth-delay product, so a full link pushes
back on the sender as TCP would.  stall() stops forwarding and reading
in both directions until resume() (the sender's socket buffers fill and
its sends block, as on a link that lost its peer without a reset);
cut() resets every connection and refuses new ones until restore()."""

import collections
import socket
import threading
import time


class _Direction:
    """One way of one connection: a reader that queues chunks with the
    time they may leave, and a writer that sends them then."""

    CHUNK = 64 * 1024

    def __init__(self, link, src, dst):
        self.link = link
        self.src = src
        self.dst = dst
        self.queue = collections.deque()
        self.queued = 0
        self.cond = threading.Condition()
        self.done = False
        self.next_free = 0.0            # when the link is free again
        for target in (self._read, self._write):
            threading.Thread(target=target, daemon=True).start()

    def _room(self):
        delay, rate = self.link.delay_s, self.link.rate_Bps
        bdp = int(delay * rate) if rate else 0
        return max(4 * self.CHUNK, bdp + 4 * self.CHUNK)

    def _read(self):
        try:
            while True:
                self.link.wait_flowing()
                with self.cond:
                    while self.queued >= self._room() and not self.done:
                        self.cond.wait(0.1)
                data = self.src.recv(self.CHUNK)
                if not data:
                    break
                now = time.monotonic()
                rate = self.link.rate_Bps
                start = max(now, self.next_free)
                self.next_free = start + (len(data) / rate if rate else 0)
                with self.cond:
                    self.queue.append((self.next_free + self.link.delay_s,
                                       data))
                    self.queued += len(data)
                    self.cond.notify_all()
        except OSError:
            pass
        with self.cond:
            self.queue.append((None, b""))      # the end, after the data
            self.cond.notify_all()

    def _write(self):
        try:
            while True:
                with self.cond:
                    while not self.queue:
                        self.cond.wait()
                    at, data = self.queue[0]
                if at is None:
                    self.dst.shutdown(socket.SHUT_WR)
                    break
                wait = at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self.link.wait_flowing()
                self.dst.sendall(data)
                with self.cond:
                    self.queue.popleft()
                    self.queued -= len(data)
                    self.cond.notify_all()
        except OSError:
            pass
        with self.cond:
            self.done = True
            self.cond.notify_all()


class BadLink:
    def __init__(self, target_port, delay_ms=0, rate_bps=0):
        self.target_port = int(target_port)
        self.delay_s = delay_ms / 1000.0
        self.rate_Bps = rate_bps / 8.0
        self.flowing = threading.Event()
        self.flowing.set()
        self.refusing = False
        self.conns = []
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                src, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                self._reset(src)
                continue
            try:
                dst = socket.create_connection(("127.0.0.1",
                                                self.target_port))
            except OSError:
                self._reset(src)
                continue
            with self.lock:
                self.conns.append((src, dst))
            _Direction(self, src, dst)
            _Direction(self, dst, src)

    @staticmethod
    def _reset(sock):
        # SO_LINGER 0: close() sends a reset, as a link that went away
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()

    def wait_flowing(self):
        self.flowing.wait()

    def shape(self, delay_ms=None, rate_bps=None):
        if delay_ms is not None:
            self.delay_s = delay_ms / 1000.0
        if rate_bps is not None:
            self.rate_Bps = rate_bps / 8.0

    def stall(self):
        self.flowing.clear()

    def resume(self):
        self.flowing.set()

    def cut(self):
        """Resets every connection; new ones are refused until
        restore()."""
        self.refusing = True
        with self.lock:
            conns, self.conns = self.conns, []
        for src, dst in conns:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._reset(s)
        self.flowing.set()

    def restore(self):
        self.refusing = False

    def close(self):
        self.cut()
        self.listener.close()
