"""Part 2, must-show 4: the COLO cache costs memory only for the
checkpoint in flight, and is released after the incoming thread has been
joined.  (The LeakSanitizer run of the suite covers leaks: every
colo-secondary of a full COLO session must exit 0 under it.)"""

import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402


def proc_status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def big_anon_rw_bytes(pid, at_least):
    """Bytes in private anonymous read-write mappings of @at_least bytes
    or more (the kernel may merge the caches of adjacent blocks)."""
    total = 0
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if len(parts) < 6 and parts[1] == "rw-p" and hi - lo >= at_least:
                total += hi - lo
    return total


class ColoCache(ct.TempDirTestCase):

    def test_cache_follows_dirty_set_and_is_released(self):
        initial = ct.make_colo_initial_stream(self.tmp)
        sec = ct.ColoSecondary(self.tmp)
        pid = sec.proc.pid
        try:
            # Baseline after a tiny session (the initial migration only).
            model = os.path.join(self.tmp, "model")
            base_argv = [ct.TEST_PRIMARY, "--initial", initial, "--connect",
                         "tcp:127.0.0.1:%d" % sec.port, "--ram-dir", model,
                         "-q", "--region", "8:56"]
            p = subprocess.run(base_argv + ["--checkpoints", "12",
                                            "--pages", "6000"],
                               stderr=subprocess.PIPE, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            st = sec.qmp.cmd("query-colo-status")
            self.assertEqual(st["x-checkpoints"], 12)
            reserved = st["x-cache-reserved-bytes"]
            self.assertGreaterEqual(reserved, 64 << 20)
            # Up to 6000 pages (23 MiB) per checkpoint went through the
            # cache; after the commits it holds (almost) nothing.
            anon = proc_status(pid, "RssAnon")
            self.assertLess(anon, 16 << 20,
                            "anonymous RSS %d after the checkpoints" % anon)
            self.assertGreaterEqual(big_anon_rw_bytes(pid, 64 << 20),
                                    64 << 20)

            sec.qmp.wait_event("COLO_EXIT")
            sec.qmp.cmd("x-colo-lost-heartbeat")
            ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")[
                "x-cache-reserved-bytes"] == 0, 10, "cache release")
            self.assertEqual(sec.qmp.cmd("query-migrate")["status"],
                             "completed")
            self.assertEqual(big_anon_rw_bytes(pid, 64 << 20), 0,
                             "the cache mapping is still there")
            # the committed state stayed
            self.assertEqual(
                ct.sha256_file(os.path.join(sec.ram_dir, "pc.ram")),
                ct.sha256_file(os.path.join(model, "pc.ram")))
        finally:
            self.assertEqual(sec.quit(), 0, sec.stderr())


if __name__ == "__main__":
    ct.main()
