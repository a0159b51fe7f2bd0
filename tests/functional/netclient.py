"""A TCP client the tests run inside their network namespace (ip netns
exec NS python3 netclient.py HOST PORT SECONDS): it prints every line the
server sends, until SECONDS have passed or the server closes, then
"netclient: closed" or "netclient: done".  Standard library only."""

import socket
import sys
import time


def main():
    host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
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


if __name__ == "__main__":
    main()
