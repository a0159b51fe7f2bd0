"""Part 2, must-show 1: real COLO sessions replayed into colo-secondary.

colo72kvm: QEMU 7.2 primary, 7 checkpoints.  colo-fake: the QEMU 10.0.2
initial stream, then XBZRLE, CONTINUE across checkpoints, an empty RAM part,
and a fifth checkpoint cut after its RAM part.  The replies must be the
bytes the real secondary sent, and after every checkpoint the RAM files and
the committed device state must be what the independent decoder
(colodecode.py) computes."""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colodecode  # noqa: E402
import colotest as ct  # noqa: E402


def load_capture(name):
    with open(os.path.join(ct.DATA, name + ".p2s.bin"), "rb") as f:
        p2s = f.read()
    with open(os.path.join(ct.DATA, name + ".s2p.bin"), "rb") as f:
        s2p = f.read()
    return colodecode.Session(p2s), s2p


class ColoReplay(ct.TempDirTestCase):

    def check_state(self, sec, session, k):
        bad = ct.ram_matches(sec.ram_dir, session.states[k])
        self.assertEqual(bad, {}, "RAM after checkpoint %d" % k)
        self.assertEqual(ct.record_devices(sec.ram_dir), session.blobs[k],
                         "committed device state after checkpoint %d" % k)

    def replay_capture(self, name):
        session, s2p = load_capture(name)
        sec = ct.ColoSecondary(self.tmp)
        checked = []
        try:
            sock = sec.connect()

            def on_commit(k):
                self.check_state(sec, session, k)
                checked.append(k)
                if k == 0:
                    st = sec.qmp.cmd("query-colo-status")
                    self.assertEqual((st["mode"], st["last-mode"],
                                      st["reason"]),
                                     ("secondary", "none", "none"))
                    self.assertEqual(sec.qmp.cmd("query-migrate")["status"],
                                     "colo")
            replies = ct.replay(sock, session, on_commit=on_commit)
            self.assertEqual(replies, s2p)
            committed = len(session.states) - 1
            self.assertEqual(checked, list(range(committed + 1)))
            st = sec.qmp.cmd("query-colo-status")
            self.assertEqual(st["x-checkpoints"], committed)
            # The primary goes away (after a cut checkpoint, for colo-fake).
            sock.close()
            ev = sec.qmp.wait_event("COLO_EXIT")
            self.assertEqual(ev["data"], {"mode": "secondary",
                                          "reason": "error"})
            st = sec.qmp.cmd("query-colo-status")
            self.assertEqual((st["mode"], st["last-mode"], st["reason"]),
                             ("secondary", "none", "none"))
            self.check_state(sec, session, committed)
            sec.qmp.cmd("x-colo-lost-heartbeat")
            ct.wait_for(lambda: sec.qmp.cmd("query-migrate")["status"] ==
                        "completed", 10, "failover")
            st = sec.qmp.cmd("query-colo-status")
            self.assertEqual((st["mode"], st["last-mode"], st["reason"]),
                             ("none", "secondary", "request"))
            self.check_state(sec, session, committed)
            return session, sec
        finally:
            self.assertEqual(sec.quit(), 0, sec.stderr())

    def hostile_checkpoint(self, tail, *phrases):
        """The real colo72kvm initial state, then a checkpoint whose bytes
        after CHECKPOINT_REPLY are @tail: COLO must end with an error
        naming @phrases, and the committed state stay checkpoint 0."""
        session, _ = load_capture("colo72kvm")
        sec = ct.ColoSecondary(self.tmp)
        try:
            sock = sec.connect()
            start, end, expect = session.segments[0]
            sock.sendall(session.data[start:end])
            self.assertEqual(ct.recv_exact(sock, 4), expect)
            sock.sendall(struct.pack(">I", 1))          # CHECKPOINT_REQUEST
            self.assertEqual(ct.recv_exact(sock, 4), struct.pack(">I", 2))
            sock.sendall(tail)
            ev = sec.qmp.wait_event("COLO_EXIT")
            self.assertEqual(ev["data"]["reason"], "error")
            desc = sec.qmp.cmd("query-migrate")["error-desc"]
            for p in phrases:
                self.assertIn(p, desc)
            self.assertEqual(sec.qmp.cmd("query-colo-status")[
                "x-checkpoints"], 0)
            self.check_state(sec, session, 0)
            sock.close()
        finally:
            self.assertEqual(sec.quit(), 0, sec.stderr())

    def test_hostile_device_state_size(self):
        # VMSTATE_SEND, an empty RAM part (EOF), then a device state that
        # claims 1 TiB: refused before anything is allocated.
        self.hostile_checkpoint(struct.pack(">IBIQ", 3, 0, 4, 1 << 40),
                                "device state of 1099511627776 bytes",
                                "limit 268435456")

    def test_hostile_message(self):
        # a message number past the last one where VMSTATE_SEND is due
        self.hostile_checkpoint(struct.pack(">I", 0x7fffffff),
                                "(unknown)", "expected VMSTATE_SEND")

    def test_colo72kvm(self):
        session, _ = self.replay_capture("colo72kvm")
        self.assertEqual(len(session.states), 8)

    def test_colo_fake_10(self):
        session, sec = self.replay_capture("colo-fake")
        self.assertEqual(len(session.states), 5)    # initial + 4
        self.assertIsNotNone(session.cut_checkpoint)
        # The page the real 10.0.2 secondary held after its checkpoint 4
        # ("31" in colo-fake.log) is the one we hold after the cut.
        with open(os.path.join(ct.DATA,
                               "colo-fake.mem-ckpt31-after-loaded.bin"),
                  "rb") as f:
            real = f.read()
        with open(os.path.join(sec.ram_dir, "pc.ram"), "rb") as f:
            f.seek(0x2000000)
            ours = f.read(len(real))
        self.assertEqual(ours, real)


if __name__ == "__main__":
    ct.main()
