"""Part 2, must-show 2: atomicity under cuts.  The real 7.2 COLO capture is
replayed and cut at well over 100 points (every message boundary, inside
the RAM part and its page data, around EOF, inside VMSTATE_SIZE, inside the
device blob and right before its last byte).  After each cut the RAM files
and the committed device state must be byte-identical to the previous
committed checkpoint, with query-colo-status and COLO_EXIT as QEMU reports
them, before and after x-colo-lost-heartbeat."""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colodecode  # noqa: E402
import colotest as ct  # noqa: E402

# Every STRIDE-th cut point: all of them by default and in `make soak`;
# `make check` takes every second one, `make check-asan` every fourth, to
# fit CI's time.
STRIDE = int(os.environ.get("COLO_CUTS_STRIDE", "1"))


def cut_points(session):
    """(offset, checkpoints committed when the stream stops there)"""
    points = []
    for k, lay in enumerate(session.layouts):
        done = k            # checkpoints committed before this one
        req, send, live = lay["request"], lay["send"], lay["live"]
        eof, size, blob, end = lay["eof"], lay["size"], lay["blob"], lay["end"]
        mid_live = (live + eof) // 2
        cands = [req, req + 1, req + 3, send, send + 2, live, live + 1,
                 live + 5, live + 13, live + 14 + 100, mid_live,
                 mid_live + 1, eof - 6, eof - 1, eof, size, size + 2,
                 size + 4, size + 9, blob, blob + 1, blob + 100,
                 (blob + end) // 2, end - 2, end - 1]
        for c in sorted(set(cands)):
            if req <= c < end:
                points.append((c, done))
        points.append((end, done + 1))
    return points


class ColoCuts(ct.TempDirTestCase):

    def run_cut(self, session, stop_at, committed):
        sec = ct.ColoSecondary(self.tmp, ram_dir=os.path.join(
            self.tmp, "ram-%d" % stop_at))
        try:
            sock = sec.connect()
            ct.replay(sock, session, stop_at=stop_at)
            sock.close()
            ev = sec.qmp.wait_event("COLO_EXIT", 20)
            self.assertEqual(ev["data"], {"mode": "secondary",
                                          "reason": "error"})
            st = sec.qmp.cmd("query-colo-status")
            self.assertEqual((st["mode"], st["last-mode"], st["reason"]),
                             ("secondary", "none", "none"))
            self.assertEqual(st["x-checkpoints"], committed)
            self.assertEqual(sec.qmp.cmd("query-migrate")["status"], "colo")
            sec.qmp.cmd("x-colo-lost-heartbeat")
            ct.wait_for(lambda: sec.qmp.cmd("query-migrate")["status"] ==
                        "completed", 10, "failover")
            st = sec.qmp.cmd("query-colo-status")
            self.assertEqual((st["mode"], st["last-mode"], st["reason"]),
                             ("none", "secondary", "request"))
            bad = ct.ram_matches(sec.ram_dir, session.states[committed])
            self.assertEqual(bad, {})
            with open(os.path.join(sec.ram_dir, "device-state.bin"),
                      "rb") as f:
                self.assertEqual(f.read(), session.blobs[committed])
        finally:
            rc = sec.quit()
            shutil.rmtree(sec.ram_dir, ignore_errors=True)
        self.assertEqual(rc, 0, sec.stderr())
        # every event up to its exit has been read: one COLO_EXIT only
        self.assertFalse([e for e in sec.qmp.events
                          if e["event"] == "COLO_EXIT"],
                         "a second COLO_EXIT")

    def test_cuts_colo72kvm(self):
        with open(os.path.join(ct.DATA, "colo72kvm.p2s.bin"), "rb") as f:
            session = colodecode.Session(f.read())
        points = cut_points(session)
        self.assertGreaterEqual(len(points), 100)
        points = points[::STRIDE]
        for stop_at, committed in points:
            with self.subTest(cut=hex(stop_at), committed=committed):
                self.run_cut(session, stop_at, committed)
        print("\n%d cut points checked" % len(points), file=sys.stderr)

    def test_cuts_colo_fake_xbzrle(self):
        with open(os.path.join(ct.DATA, "colo-fake.p2s.bin"), "rb") as f:
            session = colodecode.Session(f.read())
        for stop_at, committed in cut_points(session)[::STRIDE]:
            with self.subTest(cut=hex(stop_at), committed=committed):
                self.run_cut(session, stop_at, committed)


if __name__ == "__main__":
    ct.main()
