"""The tests' network clients, run inside the test's own network namespace
(ip netns exec NS python3 netclient.py MODE ...).  Standard library only.

  lines HOST PORT SECONDS   print every line the server sends, until
                            SECONDS have passed or the server closes, then
                            "netclient: closed" or "netclient: done"
                            (HOST PORT SECONDS alone means the same)
  ask HOST PORT TEXT        send TEXT and a newline, print what comes back
                            until the server closes
  udp-count ADDR PORT IDLE  count datagrams "N\\n" sent to ADDR:PORT until
                            none came for IDLE seconds; print "udp: got G
                            in-order O first-missing M last L"
"""

import socket
import sys
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


def main():
    args = sys.argv[1:]
    if args and args[0] not in ("lines", "ask", "udp-count"):
        args = ["lines"] + args
    mode = args[0]
    if mode == "lines":
        lines(args[1], int(args[2]), float(args[3]))
    elif mode == "ask":
        ask(args[1], int(args[2]), args[3])
    else:
        udp_count(args[1], int(args[2]), float(args[3]))


if __name__ == "__main__":
    main()
