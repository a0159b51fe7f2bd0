"""The tests' network clients, run inside the test's own network namespace
(ip netns exec NS python3 netclient.py MODE ...).  Standard library only.

  lines HOST PORT SECONDS   print every line the server sends, until
                            SECONDS have passed or the server closes, then
                            "netclient: closed" or "netclient: done"
                            (HOST PORT SECONDS alone means the same)
  ask HOST PORT TEXT        send TEXT and a newline, say "ask: sent", then
                            print what comes back until the server closes
  udp-count ADDR PORT IDLE  count datagrams "N\\n" sent to ADDR:PORT until
                            none came for IDLE seconds; print "udp: got G
                            in-order O first-missing M last L"
  rr HOST PORT SECONDS [N]  request/response against an echo service on
                            N connections at once (1): a 64-byte line, wait
                            for it back, again; print one JSON line of
                            counts and latencies (ms)
  bulk HOST PORT SECONDS    read a stream; print one JSON line with the
                            bytes and the seconds
  upload HOST PORT SECONDS  send zeros as fast as they go; print one JSON
                            line with the bytes acknowledged and the seconds
  spin HOST PORT SECONDS    ask the guest's compute loop to run SECONDS;
                            print one JSON line with its rounds/s
  rr-log HOST PORT COUNT    COUNT requests on one connection, one at a
                            time; print one JSON line: [sent, received]
                            of each, on CLOCK_MONOTONIC (seconds)
"""

import fcntl
import json
import socket
import statistics
import struct
import sys
import termios
import threading
import time

# Root may give a socket a receive buffer beyond net.core.rmem_max: a
# released burst of held packets arrives all at once.
SO_RCVBUFFORCE = 33


def lines(host, port, secs):
    deadline = time.monotonic() + secs
    s = socket.create_connection((host, port), timeout=30)
    buf = b""
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        if not data:
            print("netclient: closed", flush=True)
            return
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            print(line.decode(errors="replace"), flush=True)
    print("netclient: done", flush=True)


def ask(host, port, text):
    s = socket.create_connection((host, port), timeout=60)
    s.sendall(text.encode() + b"\n")
    print("ask: sent", flush=True)
    while True:
        data = s.recv(65536)
        if not data:
            break
        sys.stdout.write(data.decode(errors="replace"))
    sys.stdout.flush()


def udp_count(addr, port, idle):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 256 << 20)
    s.bind((addr, port))
    print("udp: listening", flush=True)
    got = in_order = 0
    first_missing = None
    last = 0
    s.settimeout(120)
    while True:
        try:
            data = s.recv(2048)
        except socket.timeout:
            break
        s.settimeout(idle)
        got += 1
        n = int(data.strip() or b"0")
        if n == last + 1:
            in_order += 1
        elif first_missing is None:
            first_missing = last + 1
        last = n
    print("udp: got %d in-order %d first-missing %s last %d"
          % (got, in_order, first_missing, last), flush=True)


def echo_connection(host, port):
    s = socket.create_connection((host, port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def ask_once(s, req):
    """Sends @req and waits for it to come back; (sent, received) on
    CLOCK_MONOTONIC."""
    t0 = time.monotonic()
    s.sendall(req)
    got = b""
    while len(got) < len(req):
        data = s.recv(65536)
        if not data:
            raise SystemExit("rr: the server closed")
        got += data
    return t0, time.monotonic()


def rr_one(host, port, end, took):
    s = echo_connection(host, port)
    req = b"r" * 63 + b"\n"
    while time.monotonic() < end:
        sent, got = ask_once(s, req)
        took.append((got - sent) * 1000)
    s.close()


def rr(host, port, secs, conns=1):
    took = []
    end = time.monotonic() + secs
    threads = [threading.Thread(target=rr_one, args=(host, port, end, took))
               for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took.sort()
    step = max(1, len(took) // 2000)
    print(json.dumps({"requests": len(took), "seconds": secs,
                      "connections": conns,
                      "mean_ms": statistics.mean(took),
                      "p50_ms": took[len(took) // 2],
                      "p99_ms": took[len(took) * 99 // 100],
                      "sorted_ms": took[::step]}), flush=True)


def for_seconds(s, secs, step):
    """Calls @step (bytes moved, 0 at the end) on @s for @secs seconds;
    (bytes, seconds taken)."""
    total = 0
    t0 = time.monotonic()
    end = t0 + secs
    while time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            n = step()
        except socket.timeout:
            break
        if not n:
            break
        total += n
    return total, time.monotonic() - t0


def bulk(host, port, secs):
    s = socket.create_connection((host, port), timeout=60)
    total, took = for_seconds(s, secs, lambda: len(s.recv(1 << 20)))
    print(json.dumps({"bytes": total, "seconds": took}), flush=True)


def upload(host, port, secs):
    s = socket.create_connection((host, port), timeout=60)
    # a small send buffer: what was sent but not acknowledged at the end
    # is little against what was
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 << 10)
    chunk = bytes(64 << 10)
    total, took = for_seconds(s, secs, lambda: s.send(chunk))
    # what the guest has not acknowledged yet is still queued here
    queued = struct.unpack("i", fcntl.ioctl(s.fileno(), termios.TIOCOUTQ,
                                            b"\0" * 4))[0]
    print(json.dumps({"bytes": max(0, total - queued), "seconds": took}),
          flush=True)
    s.close()


def spin(host, port, secs):
    s = socket.create_connection((host, port), timeout=secs + 120)
    s.sendall(b"%g\n" % secs)
    got = b""
    while not got.endswith(b"\n"):
        data = s.recv(64)
        if not data:
            break
        got += data
    print(json.dumps({"rounds_per_s": float(got.strip() or 0)}), flush=True)


def rr_log(host, port, count):
    s = echo_connection(host, port)
    req = b"q" * 63 + b"\n"
    out = [list(ask_once(s, req)) for _ in range(count)]
    s.close()
    print(json.dumps(out), flush=True)


MODES = {"lines": lambda a: lines(a[0], int(a[1]), float(a[2])),
         "ask": lambda a: ask(a[0], int(a[1]), a[2]),
         "udp-count": lambda a: udp_count(a[0], int(a[1]), float(a[2])),
         "rr": lambda a: rr(a[0], int(a[1]), float(a[2]),
                            int(a[3]) if len(a) > 3 else 1),
         "bulk": lambda a: bulk(a[0], int(a[1]), float(a[2])),
         "upload": lambda a: upload(a[0], int(a[1]), float(a[2])),
         "spin": lambda a: spin(a[0], int(a[1]), float(a[2])),
         "rr-log": lambda a: rr_log(a[0], int(a[1]), int(a[2]))}


def main():
    args = sys.argv[1:]
    if args and args[0] not in MODES:
        args = ["lines"] + args
    MODES[args[0]](args[1:])


if __name__ == "__main__":
    main()
