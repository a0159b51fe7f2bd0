"""Part 2, must-show 4: the COLO cache costs memory only for the
checkpoint in flight, and is released once the checkpoint loop has ended
(the primary is gone), before any failover.  (The LeakSanitizer run of
the suite covers leaks: every colo-secondary of a full COLO session must
exit 0 under it.)"""

import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402


def cache_maps(pid):
    """The mappings of the COLO cache files (<ram-dir>/colo-cache/...), as
    (start, end)."""
    out = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and "/colo-cache/" in parts[5]:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                out.add((lo, hi))
    return out


def resident_in(pid, ranges):
    """Bytes resident in the mappings @ranges of @pid (/proc/PID/smaps):
    the cache itself, whatever else the process (or a sanitizer's heap)
    holds."""
    total = 0
    inside = False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = (lo, hi) in ranges
            elif inside and head == "Rss:":
                total += int(line.split()[1]) * 1024
    return total


def overlapping(ranges, others):
    return [r for r in ranges
            if any(r[0] < o[1] and o[0] < r[1] for o in others)]


class ColoCache(ct.TempDirTestCase):

    def test_cache_follows_dirty_set_and_is_released(self):
        initial = ct.make_colo_initial_stream(self.tmp)
        sec = ct.ColoSecondary(self.tmp)
        pid = sec.proc.pid
        try:
            model = os.path.join(self.tmp, "model")
            prim = subprocess.Popen(
                [ct.TEST_PRIMARY, "--initial", initial, "--connect",
                 "tcp:127.0.0.1:%d" % sec.port, "--ram-dir", model, "-q",
                 "--region", "8:56", "--checkpoints", "40", "--pages",
                 "6000", "--delay-ms", "50"], stderr=subprocess.PIPE)
            ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")[
                "x-checkpoints"] >= 12, 120, "12 checkpoints")
            # Hold the primary between two checkpoints: stopped, and the
            # secondary idle before and after the measurements.
            while True:
                prim.send_signal(signal.SIGSTOP)
                st = sec.qmp.cmd("query-colo-status")
                if not st["x-in-checkpoint"]:
                    cache = cache_maps(pid)
                    # the pages go back right after VMSTATE_LOADED
                    ct.wait_for(lambda: resident_in(pid, cache) < (1 << 20),
                                10, "the cache to give its pages back")
                    held = resident_in(pid, cache)
                    in_files = int(subprocess.run(
                        ["du", "-sB1", os.path.join(sec.ram_dir,
                                                    "colo-cache")],
                        stdout=subprocess.PIPE).stdout.split()[0])
                    again = sec.qmp.cmd("query-colo-status")
                    if not again["x-in-checkpoint"] and \
                            again["x-checkpoints"] == st["x-checkpoints"]:
                        break
                prim.send_signal(signal.SIGCONT)
                n = st["x-checkpoints"]
                ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")[
                    "x-checkpoints"] > n, 60, "the next checkpoint")
            prim.send_signal(signal.SIGCONT)
            reserved = st["x-cache-reserved-bytes"]
            self.assertGreaterEqual(reserved, 64 << 20)
            # Up to 6000 pages (23 MiB) per checkpoint went through the
            # cache; after the commits it holds (almost) nothing, neither
            # mapped nor in its files.
            self.assertLess(in_files, 1 << 20)
            self.assertLess(held, 1 << 20,
                            "the cache holds %d bytes after the checkpoints"
                            % held)
            self.assertGreaterEqual(sum(hi - lo for lo, hi in cache),
                                    64 << 20)

            self.assertEqual(prim.wait(120), 0, prim.stderr.read())
            prim.stderr.close()
            sec.qmp.wait_event("COLO_EXIT")
            # the loop is over: its cache is gone, the session waits for
            # the failover decision
            self.assertEqual(sec.qmp.cmd("query-colo-status")[
                "x-cache-reserved-bytes"], 0)
            self.assertEqual(overlapping(cache_maps(pid), cache),
                             [], "the cache mapping is still there")
            self.assertFalse(os.path.exists(os.path.join(sec.ram_dir,
                                                         "colo-cache")),
                             "the cache files are still there")
            sec.qmp.cmd("x-colo-lost-heartbeat")
            ct.wait_for(lambda: sec.qmp.cmd("query-migrate")["status"] ==
                        "completed", 10, "the failover")
            # the committed state stayed
            self.assertEqual(
                ct.sha256_file(os.path.join(sec.ram_dir, "pc.ram")),
                ct.sha256_file(os.path.join(model, "pc.ram")))
        finally:
            self.assertEqual(sec.quit(), 0, sec.stderr())


if __name__ == "__main__":
    ct.main()
