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

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402

RUNS = int(os.environ.get("COLO_NET_RUNS", "3"))
UNBUFFERED_MAX_RUNS = 8


def kill_primary_during_stream(tc, tmp, tag, rnd, agent_args=(),
                               stall_ok=False):
    """One run: protect, stream, kill the primary QEMU just after a line
    came, fail over, read on.  Returns (lines, kill index, agent's
    net-buffer figures before the kill, whether the stream went on).  A
    stream that stops after the failover fails the test unless @stall_ok
    (without the buffer it may: the client has acknowledged bytes the
    resumed guest never sent)."""
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
        # the bridge has learnt the guest's MAC on the standby's tap
        ct.wait_for(lambda: "%s dev tap1" % ct.GUEST_MAC in subprocess.run(
            ns.prefix() + ["bridge", "fdb", "show", "br", "br0"],
            stdout=subprocess.PIPE).stdout.decode(), 10,
            "the guest's MAC on tap1")
        # the same connection goes on: 15 lines after the failover
        ok = stream.wait_lines(killed_at + 15, 60)
        lines = stream.text()
        tc.assertTrue(ok or stall_ok, "the stream stopped at the failover "
                      "(%d lines, %d at the kill): %s" % (
                          len(lines), killed_at, lines[-5:]))
        tc.assertNotIn("netclient: closed", lines)
        return lines, killed_at, figures, ok
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
                lines, at, fig, _ = kill_primary_during_stream(
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
        execution the failover threw away, or its connection stalls on
        bytes that execution had sent.  Not every run can show it (the
        kill may come before anything was sent after the last checkpoint:
        about half do here), so runs go on until one does, at most
        UNBUFFERED_MAX_RUNS."""
        ct.require_linux_guest()
        rnd = random.Random(5)
        for run in range(UNBUFFERED_MAX_RUNS):
            lines, at, fig, went_on = kill_primary_during_stream(
                self, os.path.join(self.tmp, "plain%d" % run), "np%d" % run,
                rnd, agent_args=["--no-net-buffer"], stall_ok=True)
            self.assertIsNone(fig)
            problems = ct.service_stream_problems(lines)
            if not went_on:
                problems.append("the connection stalled after line %d: the "
                                "client had acknowledged bytes the resumed "
                                "guest never sent" % len(lines))
            print("\nunbuffered run %d: killed after line %d: %s" % (
                run, at, problems[:2] or "no break seen"), file=sys.stderr)
            if problems:
                break
        else:
            self.fail("without the buffer none of %d runs showed a "
                      "rollback: the test cannot tell" % UNBUFFERED_MAX_RUNS)


CHECKPOINT_LINE = re.compile(
    r"^checkpoint (\d+): .*; by (\w+), started ([\d.]+), loaded ([\d.]+), "
    r"released ([\d.]+)$", re.M)


def request_checkpoints(tc, tag, agent_args, requests=40):
    """The Linux guest protected with @agent_args; one client sends
    @requests requests to the echo port, one at a time.  Returns, per
    request, (sent, reply received, the first checkpoint that started
    after it was sent, the checkpoint that released its reply), each
    checkpoint as colo-primary's own record of it: number, trigger,
    started, loaded, released (times on CLOCK_MONOTONIC, the client's
    clock too)."""
    ct.require_qemu("10.0")
    ct.require_netns()
    ct.require_linux_guest()
    tmp = os.path.join(tc.tmp, tag)
    os.makedirs(tmp)
    ns = ct.NetNs(tag)
    guest = None
    try:
        # no IPv6: its neighbour discovery would start checkpoints of its
        # own between a request and its reply
        guest = ct.ProtectedLinuxGuest(tmp, ns, failover_net=False,
                                       agent_args=agent_args,
                                       append="ipv6.disable=1")
        p = guest.client("rr-log", ct.GUEST_IP, 7779, requests)
        out, err = p.communicate(timeout=300)
        tc.assertEqual(p.returncode, 0, err.decode())
        times = json.loads(out.decode().strip().splitlines()[-1])
        # the record of the last reply's checkpoint is printed after its
        # release: wait for it
        ct.wait_for(lambda: any(float(m[4]) >= times[-1][1] - 0.05 for m in
                                CHECKPOINT_LINE.findall(
                                    guest.agent_log_text())), 30,
                    "the last checkpoint's record")
        log = guest.agent_log_text()
    finally:
        if guest:
            guest.close()
        ns.close()
    ckpts = [(int(n), trig, float(s), float(lo), float(r))
             for n, trig, s, lo, r in CHECKPOINT_LINE.findall(log)]
    tc.assertGreater(len(ckpts), requests // 2, log[-2000:])
    out = []
    for sent, got in times:
        first = min((c for c in ckpts if c[2] > sent), key=lambda c: c[2],
                    default=None)
        # the reply went out when QEMU ran the release, which is after
        # the checkpoint's LOADED: the last LOADED before the client got it
        releasing = max((c for c in ckpts if c[3] < got), key=lambda c: c[3],
                        default=None)
        out.append((sent, got, first, releasing))
    return out


class OutputTrigger(ct.TempDirTestCase):
    """A request's reply is released by the next checkpoint, which the
    reply itself starts; on the timer alone it waits for the timer.  Not
    speed: which checkpoint, and what started it, from colo-primary's own
    record of each checkpoint and the client's timestamps."""

    def test_reply_released_by_the_next_checkpoint(self):
        rows = request_checkpoints(self, "trig", ["--x-checkpoint-delay",
                                                  "100"])
        # the first request follows the connection's handshake, whose own
        # output starts checkpoints around it
        rows = rows[1:]
        wrong = [(i, first, releasing) for i, (_, _, first, releasing)
                 in enumerate(rows)
                 if first is None or releasing != first or
                 first[1] != "output"]
        # an unrelated packet of the guest's (ARP, say) may still start a
        # checkpoint between a request and its reply: one at most
        self.assertLessEqual(len(wrong), 1, wrong[:5])
        waits = sorted(r[2] - sent for sent, _, _, r in rows if r)
        print("\ntrigger: %d requests, %d released by the first checkpoint "
              "after them, which their reply started; request -> that "
              "checkpoint's start: median %.1f ms" % (
                  len(rows), len(rows) - len(wrong),
                  waits[len(waits) // 2] * 1000), file=sys.stderr)

    def test_timer_alone_waits_for_the_timer(self):
        rows = request_checkpoints(self, "timer", [
            "--x-checkpoint-delay", "100", "--no-output-trigger"])
        self.assertTrue(all(r is not None for _, _, _, r in rows))
        self.assertEqual({r[1] for _, _, _, r in rows}, {"timer"})
        # the client asks again as soon as a reply comes, that is right
        # after a release: the reply then waits for the whole delay
        waits = sorted(r[2] - sent for sent, _, _, r in rows)
        self.assertGreater(waits[len(waits) // 2], 0.05, waits)
        print("\ntimer: %d requests, every reply released by a timer "
              "checkpoint; request -> its start: median %.1f ms" % (
                  len(rows), waits[len(waits) // 2] * 1000),
              file=sys.stderr)


def leftovers(qmp):
    """colo-primary's filters and chardevs still in QEMU."""
    objs = [o["name"] for o in qmp.cmd("qom-list", path="/objects")
            if o["name"].startswith("colo-n")]
    chardevs = [c["label"] for c in qmp.cmd("query-chardev")
                if c["label"].startswith("colo-n")]
    return objs + chardevs


class NetBufferBadConditions(ct.TempDirTestCase):
    """What happens to held output when something goes wrong: nothing is
    dropped silently, the VM keeps running, the error says what."""

    def setUp(self):
        super().setUp()
        ct.require_linux_guest()
        ct.require_qemu("10.0")
        ct.require_netns()
        self.ns = ct.NetNs("bad")
        self.guest = self.stream = None

    def tearDown(self):
        if self.stream:
            self.stream.stop()
        if self.guest:
            self.guest.close()
        self.ns.close()
        super().tearDown()

    def stream_lines(self, n=5):
        self.stream = ct.LineStream(self.guest.client("lines", ct.GUEST_IP,
                                                      7777, 300))
        self.assertTrue(self.stream.wait_lines(n, 60), self.stream.text())

    def assert_stream_goes_on(self, more=15):
        have = len(self.stream.lines)
        self.assertTrue(self.stream.wait_lines(have + more, 30),
                        "the guest's output stopped: %s"
                        % self.stream.text()[-3:])
        self.assertEqual(ct.service_stream_problems(self.stream.text()), [])

    def protect_with_second_monitor(self):
        """The protected guest streaming, and a QMP monitor of QEMU's that
        is not colo-primary's (another operator)."""
        second = os.path.join(self.tmp, "second.qmp")
        self.guest = ct.ProtectedLinuxGuest(
            self.tmp, self.ns, failover_net=False,
            qemu_extra=["-qmp", "unix:%s,server=on,wait=off" % second])
        self.stream_lines()
        return ct.QMP(second)

    def vm_qmp_after_agent(self):
        """QEMU's QMP, once colo-primary (and its guard) let go of it."""
        return ct.QMP(self.guest.vm.qmp_path, timeout=30)

    def test_burst_beyond_qemus_buffer_limit(self):
        """30,000 datagrams in one 3 s epoch: more than the 10,000 one
        filter-buffer holds; every one arrives, in order.  On the timer
        alone: the output trigger would cut the burst into epochs."""
        self.guest = ct.ProtectedLinuxGuest(
            self.tmp, self.ns, failover_net=False,
            agent_args=["--x-checkpoint-delay", "3000",
                        "--no-output-trigger"])
        rx = self.guest.client("udp-count", "10.77.0.1", 9999, 5)
        self.assertEqual(rx.stdout.readline().strip(), b"udp: listening")
        ask = self.guest.client("ask", ct.GUEST_IP, 7778, "30000")
        out, err = ask.communicate(timeout=120)
        self.assertIn(b"udpflood: sent 30000 datagrams", out, err)
        out, err = rx.communicate(timeout=120)
        fig = self.guest.agent_query()["x-colo-net-buffer"]
        print("\n%s; net buffer: %s" % (out.decode().strip(), fig),
              file=sys.stderr)
        self.assertEqual(out.decode().split()[:5],
                         ["udp:", "got", "30000", "in-order", "30000"])
        self.assertGreater(fig["packets-held-peak"], 10000)
        self.assertGreater(fig["rotations"], 0)
        self.assertGreaterEqual(fig["packets-released"], 30000)

    def test_qemus_buffer_alone_drops_beyond_its_limit(self):
        """The fact the test above guards against, on this QEMU: one
        filter-buffer holding the same burst loses all but 10,000."""
        kernel, initrd = ct.require_linux_guest()
        self.ns.add_tap("tap0")
        vm = ct.Qemu("10.0", self.tmp, mem_mb=256, prefix=self.ns.prefix(),
                     extra=[
            "-kernel", kernel, "-initrd", initrd,
            "-append", "console=ttyS0 quiet colo.run=service "
                       "colo.ip=%s/24" % ct.GUEST_IP,
            "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
            "-device", "virtio-net-pci,netdev=n0,mac=" + ct.GUEST_MAC])
        try:
            ct.wait_for(lambda: "serving on port 7777" in vm.serial(), 120,
                        "the guest's service")
            run = lambda *a: subprocess.Popen(  # noqa: E731
                self.ns.prefix() + [sys.executable, ct.NETCLIENT] +
                [str(x) for x in a], stdout=subprocess.PIPE)
            rx = run("udp-count", "10.77.0.1", 9999, 5)
            self.assertEqual(rx.stdout.readline().strip(), b"udp: listening")
            # the burst starts two seconds after the request has reached
            # the guest: the hold is on by then; the guest's console says
            # when the burst has been sent
            ask = run("ask", ct.GUEST_IP, 7778, "30000")
            self.assertEqual(ask.stdout.readline().strip(), b"ask: sent")
            vm.qmp.cmd("object-add", **{"qom-type": "filter-buffer",
                                        "id": "hold", "netdev": "n0",
                                        "queue": "rx",
                                        "interval": 4000000000})
            ct.wait_for(lambda: "udpflood: sent" in vm.serial(), 120,
                        "the burst")
            vm.qmp.cmd("object-del", id="hold")
            ask.communicate(timeout=60)
            out, _ = rx.communicate(timeout=120)
            got = int(out.split()[2])
            print("\none filter-buffer: %s" % out.decode().strip(),
                  file=sys.stderr)
            self.assertLessEqual(got, 10000 + 100)
        finally:
            vm.qmp.close()
            vm.kill()

    def test_secondary_gone_releases_held_output(self):
        self.guest = ct.ProtectedLinuxGuest(self.tmp, self.ns,
                                            failover_net=False)
        self.stream_lines()
        self.guest.sec.proc.send_signal(signal.SIGKILL)
        self.guest.sec.proc.wait()
        self.guest.sec.log.close()
        self.guest.sec.qmp.close()
        self.guest.sec = None
        ct.wait_for(lambda: self.guest.agent_query()["status"] == "failed",
                    30, "colo-primary to see the secondary gone")
        info = self.guest.agent_query()
        self.assertIn("secondary", info["error-desc"])
        fig = info["x-colo-net-buffer"]
        self.assertEqual(fig["packets-held"], 0, fig)
        self.assert_stream_goes_on()
        self.assertIsNone(self.guest.agent.poll())
        self.guest.agent.send_signal(signal.SIGTERM)
        # with --monitor a failed session is reported there, not in the
        # exit status
        self.assertEqual(self.guest.agent.wait(30), 0)
        q = self.vm_qmp_after_agent()
        self.assertEqual(q.cmd("query-status")["status"], "running")
        self.assertEqual(leftovers(q), [])
        q.close()

    def test_agent_killed_guard_releases_held_output(self):
        """SIGKILL of colo-primary: its release guard deletes the
        buffers, the VM's output flows again."""
        self.guest = ct.ProtectedLinuxGuest(self.tmp, self.ns,
                                            failover_net=False)
        self.stream_lines()
        self.guest.agent.send_signal(signal.SIGKILL)
        self.guest.agent.wait()
        self.assert_stream_goes_on()
        q = self.vm_qmp_after_agent()
        ct.wait_for(lambda: leftovers(q) == [], 10, "the guard's cleanup")
        self.assertEqual(q.cmd("query-status")["status"], "running")
        q.close()
        self.assertIn("colo-primary is gone; released",
                      self.guest.agent_log_text())

    def test_multiqueue_netdev_refused_clearly(self):
        """QEMU's filters refuse a multiqueue netdev: colo-primary says so
        and how to go on, leaves nothing in QEMU, the VM runs on."""
        self.guest = ct.ProtectedLinuxGuest(self.tmp, self.ns, queues=2,
                                            wait_checkpoint=False)
        self.assertEqual(self.guest.agent.wait(60), 3)
        log = self.guest.agent_log_text()
        self.assertIn("cannot hold the VM's network output (run with "
                      "--no-net-buffer", log)
        self.assertIn("netdev n0 (tap)", log)
        self.assertIn("multiqueue is not supported", log)
        q = self.vm_qmp_after_agent()
        self.assertEqual(q.cmd("query-status")["status"], "running")
        self.assertEqual(leftovers(q), [])
        q.close()

    def test_buffer_removed_behind_our_back(self):
        """Someone deletes the epoch's buffer on another QMP monitor: its
        packets left before their checkpoint committed, so colo-primary
        stops protecting with an error naming it; the VM runs on."""
        q = self.protect_with_second_monitor()
        ours = sorted(o for o in leftovers(q) if o.startswith("colo-nb-"))
        self.assertTrue(ours)
        try:
            q.cmd("object-del", id=ours[-1])
        except Exception as e:      # already released: take the next one
            self.fail("could not delete %s: %s" % (ours[-1], e))
        self.assertEqual(self.guest.agent.wait(30), 3)
        log = self.guest.agent_log_text()
        self.assertIn("releasing output buffer %s" % ours[-1], log)
        self.assertEqual(q.cmd("query-status")["status"], "running")
        ct.wait_for(lambda: leftovers(q) == [], 10, "the cleanup")
        q.close()
        self.assert_stream_goes_on()

    def test_buffer_add_refused_midway(self):
        """QEMU refuses the next epoch's buffer (its id is taken, by an
        object made on another monitor): colo-primary cannot hold that
        epoch's output, so it stops protecting with the QMP error; what
        it held is released; the VM runs on."""
        q = self.protect_with_second_monitor()
        last = max(int(o.split("-")[2]) for o in leftovers(q)
                   if o.startswith("colo-nb-"))
        taken = ["colo-nb-%08d-0" % (last + k) for k in range(3, 8)]
        for name in taken:
            q.cmd("object-add", **{"qom-type": "secret", "id": name,
                                   "data": "x"})
        self.assertEqual(self.guest.agent.wait(30), 3)
        log = self.guest.agent_log_text()
        self.assertRegex(log, r"netdev n0: adding output buffer "
                              r"colo-nb-\d+-0: QMP object-add: ")
        self.assertEqual(q.cmd("query-status")["status"], "running")
        ct.wait_for(lambda: sorted(leftovers(q)) == sorted(taken), 10,
                    "the cleanup")
        q.close()
        self.assert_stream_goes_on()


if __name__ == "__main__":
    ct.main()
