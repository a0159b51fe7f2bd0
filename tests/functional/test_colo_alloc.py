"""Part 2: when the COLO cache cannot be allocated, COLO start fails with
an error naming the block and its size, and nothing allocated so far is
kept.  The secondary gets an address-space limit (prlimit) that leaves
room for its 8 GiB (sparse) RAM file but not for the cache of it."""

import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402
import streamgen as sg  # noqa: E402

BIG = 8 << 30


def vm_size(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


class ColoAlloc(ct.TempDirTestCase):

    def test_cache_allocation_failure(self):
        sec = ct.ColoSecondary(self.tmp)
        try:
            pid = sec.proc.pid
            if vm_size(pid) > (1 << 40):
                self.skipTest("sanitizer builds reserve too much address "
                              "space for an RLIMIT_AS test")
            limit = vm_size(pid) + BIG + (768 << 20)
            subprocess.run(["prlimit", "--pid", str(pid),
                            "--as=%d:%d" % (limit, limit)], check=True)
            s = sg.Stream(blocks=(("pc.ram", BIG), ("/rom@etc/x", 65536)))
            data = bytearray(s.finish())
            # ENABLE_COLO right after the configuration section
            cfg_end = 8 + 1 + 4 + len("pc-i440fx-10.0")
            data[cfg_end:cfg_end] = b"\x08\x00\x08\x00\x00"
            sock = socket.create_connection(("127.0.0.1", sec.port))
            sock.sendall(bytes(data))
            sock.shutdown(socket.SHUT_WR)
            info = ct.wait_for(
                lambda: (lambda i: i if i["status"] in ("failed", "colo")
                         else None)(sec.qmp.cmd("query-migrate")), 20,
                "COLO start")
            sock.close()
            self.assertEqual(info["status"], "failed", info)
            self.assertIn("COLO cache of block 'pc.ram'", info["error-desc"])
            self.assertIn(str(BIG), info["error-desc"])
            st = sec.qmp.cmd("query-colo-status")
            self.assertEqual(st["mode"], "none")
            self.assertEqual(st["x-cache-reserved-bytes"], 0)
            # the RAM file itself was created and mapped
            self.assertEqual(os.path.getsize(
                os.path.join(sec.ram_dir, "pc.ram")), BIG)
        finally:
            self.assertEqual(sec.quit(), 0, sec.stderr())


if __name__ == "__main__":
    ct.main()
