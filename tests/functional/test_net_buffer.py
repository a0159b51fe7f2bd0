"""Network output commit, end to end, with the real Linux guest: no client
ever sees state that a failover rolls back.

Each run has its own network namespace with a bridge, tap0 for the
protected VM (stock QEMU 10.0) and tap1 for the failover QEMU that
colo-secondary starts with the same NIC (same MAC).  A client in the
namespace reads the guest's service: a line every 100 ms, "seq N NOW
PREV", where NOW is the guest's clock and PREV the NOW of the line before
(tests/guest/linux/run-lines).  The oracle is the client's own record:
after a failover, a guest that had shown the client output of an epoch
the failover rolls back writes those lines again with other clock
readings, and the chain breaks where the two executions meet.

The primary QEMU is killed with SIGKILL at random moments, each just after
a line reached the client (the moment most likely to catch an
uncommitted line on its way).  With colo-primary's network buffer: the
stream goes on over the same TCP connection, with no line missing,
repeated, reordered or from another execution.  With --no-net-buffer the
same test must see the rollback (so it can fail).

COLO_NET_RUNS (default 3; `make soak` runs 20) and COLO_NET_SEED choose
the kill moments."""

import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402

RUNS = int(os.environ.get("COLO_NET_RUNS", "3"))
UNBUFFERED_RUNS = 3


def kill_primary_during_stream(tc, tmp, tag, rnd, agent_args=()):
    """One run: protect, stream, kill the primary QEMU just after a line
    came, fail over, read on.  Returns (lines, kill index, agent's
    net-buffer figures before the kill)."""
    ct.require_qemu("10.0")
    ct.require_netns()
    os.makedirs(tmp)
    ns = ct.NetNs(tag)
    guest = stream = None
    try:
        guest = ct.ProtectedLinuxGuest(tmp, ns, agent_args=agent_args)
        stream = ct.LineStream(guest.client("lines", ct.GUEST_IP, 7777, 300))
        tc.assertTrue(stream.wait_lines(5, 60), "no lines from the guest: %s"
                      % stream.text())
        time.sleep(rnd.uniform(0.2, 2.5))
        n = len(stream.lines)
        tc.assertTrue(stream.wait_lines(n + 1, 30))
        time.sleep(rnd.uniform(0, 0.03))
        figures = guest.agent_query().get("x-colo-net-buffer")
        guest.vm.proc.send_signal(signal.SIGKILL)
        killed_at = len(stream.lines)
        ev = guest.wait_failover(60)
        tc.assertNotIn("error", ev["data"], ev)
        tc.assertTrue(ev["data"]["running"])
        # the same connection goes on: 15 lines after the failover
        ok = stream.wait_lines(killed_at + 15, 60)
        lines = stream.text()
        tc.assertTrue(ok, "the stream stopped at the failover (%d lines, "
                      "%d at the kill): %s" % (len(lines), killed_at,
                                               lines[-5:]))
        tc.assertNotIn("netclient: closed", lines)
        return lines, killed_at, figures
    finally:
        if stream:
            stream.stop()
        rc = guest.close() if guest else 0
        ns.close()
        subprocess.run(["rm", "-rf", tmp])
        tc.assertEqual(rc, 0)


class NetBufferFailover(ct.TempDirTestCase):

    def test_failover_shows_no_rollback(self):
        ct.require_linux_guest()
        rnd = random.Random(int(os.environ.get("COLO_NET_SEED", "7")))
        for run in range(RUNS):
            with self.subTest(run=run):
                lines, at, fig = kill_primary_during_stream(
                    self, os.path.join(self.tmp, "run%d" % run), "nb%d" % run,
                    rnd)
                self.assertEqual(ct.service_stream_problems(lines), [])
                self.assertIsNotNone(fig)
                self.assertEqual(fig["netdevs"], "n0 (tap)")
                self.assertGreater(fig["packets-released"], 0)
                print("\nrun %2d: killed after line %d; %d lines, chain "
                      "intact; before the kill %d packets released, mean "
                      "release latency %.1f ms" % (
                          run, at, len(lines), fig["packets-released"],
                          fig["release-latency-mean-us"] / 1000.0),
                      file=sys.stderr)

    def test_without_buffering_the_rollback_shows(self):
        """The same runs with --no-net-buffer: the client sees lines of an
        execution the failover threw away (at least one run of three;
        each is likely to)."""
        ct.require_linux_guest()
        rnd = random.Random(5)
        broken = 0
        for run in range(UNBUFFERED_RUNS):
            lines, at, fig = kill_primary_during_stream(
                self, os.path.join(self.tmp, "plain%d" % run), "np%d" % run,
                rnd, agent_args=["--no-net-buffer"])
            self.assertIsNone(fig)
            problems = ct.service_stream_problems(lines)
            broken += bool(problems)
            print("\nunbuffered run %d: killed after line %d: %s" % (
                run, at, problems[:2] or "no break seen"), file=sys.stderr)
        self.assertGreater(broken, 0, "without the buffer no run showed a "
                           "rollback: the test cannot tell")


if __name__ == "__main__":
    ct.main()
