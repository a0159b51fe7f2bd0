"""A real two-node Pacemaker cluster on one machine protects the Linux
guest (a NIC and a disk) with ocf:colo-standby:colo, and the test breaks
it: the primary's QEMU killed, the standby's colo-secondary killed, the
link between the nodes cut with both alive, the whole primary node
killed; after each, the failed node is brought back and must be
protecting the VM again.

Each node is a network namespace (its cluster link to the other node,
and a bridge br0 on the guests' LAN) with a private mount namespace
(tests/cluster/node.sh) running Debian's corosync and pacemaker.  Fencing
is tests/cluster/fence_colotest: it kills every process of the node's
namespace.  A client on the LAN namespace reads the guest's service
stream ("seq N NOW PREV") all along: a rollback it was shown breaks the
chain.  A watcher counts the VM's QEMU processes on the whole machine
every 0.1 s: never more than one.

Run by `make check-cluster` (tests/meson.build: suite "cluster").
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import colotest
from colotest import (GUEST_IP, LineStream, NETCLIENT, qemu_binary,
                      require_linux_guest, service_stream_problems, wait_for)
from colotest.cluster import (Cluster, CopyWatch, LINK, NODES, RSC,
                              netns_of, pids_named, require_cluster_tools,
                              text_of)

class ClusterTest(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.fail("the cluster test needs root (network and mount "
                      "namespaces)")
        require_cluster_tools()
        self.kernel, self.initrd = require_linux_guest()
        if not qemu_binary():
            self.fail("QEMU is missing")
        # meson's timeout (SIGTERM) must still tear the cluster down
        signal.signal(signal.SIGTERM, on_sigterm)
        self.workdir = tempfile.mkdtemp(prefix="colo-cluster-")
        os.chmod(self.workdir, 0o755)
        self.cluster = Cluster(self.workdir)
        self.watch = CopyWatch()
        self.client = None
        self.stream = None
        self.figures = []

    def tearDown(self):
        if self.stream:
            self.stream.stop()
        if self.client and self.client.poll() is None:
            self.client.kill()
            self.client.wait()
        self.watch.close()
        self.cluster.close()
        if os.environ.get("COLO_KEEP_CLUSTER"):
            print("cluster folders kept in", self.workdir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def serial(self, n):
        return text_of(os.path.join(self.cluster.node_dir(n), "srv",
                                    "serial.log"))

    def disk_ok_lines(self, n):
        return self.serial(n).count("DISK ok")

    def standby_query(self, n, command):
        """(pid, reply to QMP @command) of node @n's colo-secondary, over
        its QMP socket as seen from inside the node; None if none runs or
        it does not answer."""
        ino = self.cluster.inode[n]
        for pid in pids_named("colo-secondary"):
            if netns_of(pid) != ino:
                continue
            path = "/proc/%d/root/run/colo-standby/%s/secondary.qmp" % (pid,
                                                                       RSC)
            try:
                q = colotest.QMP(path, timeout=5)
                try:
                    return pid, q.cmd(command)
                finally:
                    q.close()
            except Exception:
                return None
        return None

    def standby_info(self, n):
        """(pid, COLO mode, checkpoints) of node @n's colo-secondary; None
        if none runs."""
        r = self.standby_query(n, "query-colo-status")
        if r is None:
            return None
        pid, st = r
        return pid, st.get("mode"), st.get("x-checkpoints", 0)

    def check_link_tls(self, primary, standby):
        """The replication link is TLS: the standby's colo-secondary wants
        it for checkpoints, and stock qemu-img, plain, from the primary
        node, is refused the disk's export."""
        r = self.standby_query(standby, "query-migrate-parameters")
        self.assertIsNotNone(r, "no colo-secondary answers on " + standby)
        params = r[1]
        self.assertEqual(params.get("tls-creds"), "colo-tls", params)
        p = subprocess.run(
            ["ip", "netns", "exec", self.cluster.ns[primary], "qemu-img",
             "info", "--image-opts", "driver=nbd,server.type=inet,"
             "server.host=%s,server.port=10809,export=disk0" % LINK[standby]],
            capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("TLS", p.stderr)

    def wait_protected(self, primary, standby, old_pid=None, timeout=300):
        """The VM runs on @primary, protected into a colo-secondary on
        @standby (not the one of pid @old_pid) that has committed a
        checkpoint, and the CIB says @standby may take over.  Returns the
        seconds it took and the standby's pid."""
        c = self.cluster
        t0 = time.monotonic()
        found = {}

        def protected():
            if c.vm_node()[0] != primary or c.prop("standby") != standby:
                return False
            info = self.standby_info(standby)
            if not info or info[0] == old_pid or info[1] != "secondary" or \
                    info[2] < 1:
                return False
            found["pid"] = info[0]
            return True
        wait_for(protected, timeout, "the VM on %s protected into %s"
                 % (primary, standby), interval=0.5)
        return time.monotonic() - t0, found["pid"]

    def check_guest(self, n, what):
        """After @what: the VM's single copy runs on @n, the client's stream
        never saw a rollback, and the guest's disk checks are clean."""
        c = self.cluster
        self.assertEqual(c.vm_node()[0], n, what)
        for node in NODES:
            self.assertNotIn("DISK MISMATCH", self.serial(node),
                             "%s: the guest's disk on %s" % (what, node))
        lines = [t for _, t in self.stream.lines]
        problems = service_stream_problems(lines)
        self.assertEqual(problems, [], "%s: the client saw %s" % (
            what, problems[:5]))
        before = self.disk_ok_lines(n)
        wait_for(lambda: self.disk_ok_lines(n) > before, 120,
                 "%s: the guest checking its disk again on %s" % (what, n))

    def fault(self, name, do, new_primary, timeout=120):
        """Does @do; waits for the VM on @new_primary and the client's
        stream flowing again; records the client's longest silence from
        the fault on (the guest's outage as the outside world sees it)
        and the peak of live VM copies."""
        self.watch.take_peak()
        t0 = time.monotonic()
        do()
        wait_for(lambda: self.cluster.vm_node()[0] == new_primary, timeout,
                 "%s: the VM running on %s" % (name, new_primary))
        moved = time.monotonic() - t0

        def flowing():
            now = time.monotonic()
            ts = [t for t, _ in self.stream.lines if t > t0]
            if now < t0 + 3 or len(ts) < 10 or now - ts[-1] > 0.5:
                return False
            recent = ts[-10:]
            return all(b - a < 0.5 for a, b in zip(recent, recent[1:]))
        wait_for(flowing, timeout, "%s: the client's stream flowing again"
                 % name, interval=0.2)
        ts = [t0] + [t for t, _ in self.stream.lines if t > t0]
        outage = max(b - a for a, b in zip(ts, ts[1:]))
        self.check_guest(new_primary, name)
        peak = self.watch.take_peak()
        self.figures.append({"scenario": name, "client_silence_s":
                             round(outage, 2), "vm_on_node_after_s":
                             round(moved, 2), "live_copies_max": peak})
        print("cluster: %-32s client's longest silence %5.1f s; VM on %s "
              "after %4.1f s; live VM copies at most %d"
              % (name, outage, new_primary, moved, peak), flush=True)
        self.assertEqual(peak, 1, "%s: %d live copies of the VM: %s" % (
            name, peak, self.watch.last_detail))

    def reprotected(self, name, primary, standby, old_pid):
        took, pid = self.wait_protected(primary, standby, old_pid)
        self.figures[-1]["reprotected_after_s"] = round(took, 1)
        print("cluster: %-32s protected again into %s %.1f s later"
              % (name, standby, took), flush=True)
        return pid

    def start_client(self, seconds=3600):
        """The client on the LAN reading the guest's service stream."""
        self.client = subprocess.Popen(
            ["ip", "netns", "exec", self.cluster.ns["lan"], sys.executable,
             NETCLIENT, "lines", GUEST_IP, "7777", str(seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stream = LineStream(self.client)
        self.assertTrue(self.stream.wait_lines(5, 60))

    def kill_vm_qemu(self):
        _, pid = self.cluster.vm_node()
        os.kill(pid, 9)

    def kill_secondary(self, n):
        ino = self.cluster.inode[n]
        for pid in pids_named("colo-secondary"):
            if netns_of(pid) == ino:
                os.kill(pid, 9)
                return
        self.fail("no colo-secondary on " + n)

    def cut_link(self):
        self.cluster.ip("n1", "link", "set", "c1", "down")
        self.cluster.ip("n2", "link", "set", "c2", "down")

    def mend_link(self):
        self.cluster.ip("n1", "link", "set", "c1", "up")
        self.cluster.ip("n2", "link", "set", "c2", "up")

    def restart_node(self, n):
        c = self.cluster
        c.power_off(n)          # what is left of it, if anything
        c.start_node(n)
        wait_for(lambda: c.online(n), 120, "node %s back in the cluster" % n,
                 interval=1)

    def test_cluster(self):
        c = self.cluster
        try:
            for n in NODES:
                c.start_node(n)
            wait_for(lambda: c.online("n1") and c.online("n2"), 120,
                     "both nodes online with quorum", interval=1)
            c.configure(self.kernel, self.initrd)
            wait_for(lambda: "serving on port 7777" in self.serial("n1"),
                     180, "the guest's service on n1", interval=0.5)
            self.start_client()
            _, sec = self.wait_protected("n1", "n2")
            self.assertEqual(self.watch.take_peak(), 1)
            self.check_link_tls("n1", "n2")

            # 1. the primary's QEMU dies: the standby takes over; the old
            # primary's instance comes back as the standby
            self.fault("kill the primary's QEMU", self.kill_vm_qemu, "n2")
            sec = self.reprotected("kill the primary's QEMU", "n2", "n1",
                                   None)

            # 2. the standby's colo-secondary dies: the VM goes on, and a
            # new standby is protected into
            self.fault("kill colo-secondary",
                       lambda: self.kill_secondary("n1"), "n2")
            sec = self.reprotected("kill colo-secondary", "n2", "n1", sec)

            # 3. the link between the nodes is cut, both alive: one fences
            # the other (the promoted side wins the race by
            # priority-fencing-delay); the VM stays where it was.  The
            # link mended, the fenced node is started again.
            self.fault("cut the link (both alive)", self.cut_link, "n2")
            wait_for(lambda: not c.node_alive("n1"), 60, "n1 fenced")
            self.mend_link()
            self.restart_node("n1")
            sec = self.reprotected("cut the link (both alive)", "n2", "n1",
                                   sec)

            # 4. the whole primary node dies; started again, it becomes
            # the standby
            self.fault("kill the whole primary node",
                       lambda: c.power_off("n2"), "n1")
            self.restart_node("n2")
            self.reprotected("kill the whole primary node", "n1", "n2", None)
            self.check_guest("n1", "after the last re-protection")
        except Exception:
            print(c.logs_text(), file=sys.stderr)
            raise
        print("cluster: figures " + json.dumps(self.figures), flush=True)


def on_sigterm(signum, frame):
    raise RuntimeError("terminated (SIGTERM)")


if __name__ == "__main__":
    colotest.main()
