#!/usr/bin/env python3
"""The long soak (make soak: COLO_SOAK_SECONDS, 15 minutes; make
soak-long: SOAK_HOURS): the two-node Pacemaker cluster of test_cluster.py
protects the Linux guest with a NIC and a disk under mixed load (the TCP
line client, the guest's disk checker, and memwrite rewriting and
checking 32 MiB of its memory), while a random fault strikes every
COLO_SOAK_GAP seconds (a random time between the two numbers):

  qemu            SIGKILL of the primary's QEMU (failover)
  colo-primary    SIGKILL of colo-primary (the VM stays, protected again)
  colo-secondary  SIGKILL of colo-secondary (the same)
  stall           SIGSTOP of colo-secondary for longer than the agent's
                  stall limit, then SIGCONT
  link            the replication link cut while both live (one node is
                  fenced; the VM stays), mended, the fenced node started
  node            the primary node killed whole (failover), started again

After each: exactly one live copy of the VM at every moment (CopyWatch),
the client's stream without a rollback, the guest's disk and memory
checks clean, protection back.  Every minute, for every daemon of the
nodes (colo-secondary, colo-primary, QEMU, corosync, pacemaker's): RSS,
open fds and threads, and the RAM folder's and /dev/shm's use on each
node, written as JSON lines to $COLO_SOAK_OUT (scripts/soak-report.py
makes the table and plot).
"""

import json
import os
import random
import signal
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(__file__))
import colotest  # noqa: E402
from colotest import wait_for  # noqa: E402
from colotest.cluster import NODES, RSC, pids_named, netns_of  # noqa: E402
# the module, not the class: unittest would run its test here too
import test_cluster  # noqa: E402

SECONDS = int(os.environ.get("COLO_SOAK_SECONDS", "900"))
GAP = [int(x) for x in os.environ.get("COLO_SOAK_GAP", "45,150").split(",")]
SEED = int(os.environ.get("COLO_SOAK_SEED", "29"))
SAMPLE_S = int(os.environ.get("COLO_SOAK_SAMPLE_S", "60"))
OUT = os.environ.get("COLO_SOAK_OUT", os.path.join(
    os.environ.get("COLO_BUILD_ROOT", "."), "meson-logs", "soak.jsonl"))
MEMWRITE = "32:4"               # MiB:MiB/s (memwrite in the guest)
STALL_S = 10                    # > the agent's stall_timeout (4 s)
FAULTS = ("qemu", "colo-primary", "colo-secondary", "stall", "link", "node")
DAEMONS = ("colo-secondary", "colo-primary", "qemu-system-x86_64",
           "corosync", "pacemakerd", "pacemaker-based", "pacemaker-fenced",
           "pacemaker-execd", "pacemaker-attrd", "pacemaker-schedulerd",
           "pacemaker-controld")


def proc_figures(pid):
    """(RSS kB, threads, open fds) of @pid, or None if it is gone."""
    try:
        rss = threads = 0
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir("/proc/%d/fd" % pid))
        return rss, threads, fds
    except (OSError, ValueError):
        return None


def used_bytes(path):
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return (st.f_blocks - st.f_bfree) * st.f_frsize


class Sampler:
    """Once a SAMPLE_S: the figures of every daemon of the nodes and
    the nodes' /dev/shm, one JSON line each."""

    def __init__(self, cluster, path):
        self.cluster = cluster
        self.out = open(path, "w")
        self.t0 = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def node_of(self, pid):
        ino = netns_of(pid)
        for n in NODES:
            if self.cluster.inode[n] == ino:
                return n
        return None

    def sample(self):
        t = round(time.monotonic() - self.t0, 1)
        for name in DAEMONS:
            for pid in pids_named(name):
                node = self.node_of(pid)
                fig = proc_figures(pid) if node else None
                if fig:
                    self.write({"t": t, "node": node, "daemon": name,
                                "pid": pid, "rss_kb": fig[0],
                                "threads": fig[1], "fds": fig[2]})
        for pid in pids_named("colo-secondary"):
            node = self.node_of(pid)
            if node:
                root = "/proc/%d/root" % pid
                self.write({"t": t, "node": node, "daemon": "shm",
                            "ram_dir_bytes": colotest.folder_bytes(
                                root + "/dev/shm/colo-standby/" + RSC),
                            "shm_bytes": used_bytes(root + "/dev/shm")})

    def write(self, rec):
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()

    def _run(self):
        while not self.stop.wait(SAMPLE_S):
            try:
                self.sample()
            except Exception as e:          # a process went meanwhile
                self.write({"t": -1, "error": str(e)})

    def close(self):
        self.stop.set()
        self.thread.join(10)
        self.out.close()


class ClusterSoak(test_cluster.ClusterTest):
    # the cluster test's own scenario is make check-cluster's, not ours
    test_cluster = None

    def node_pid(self, name, n):
        ino = self.cluster.inode[n]
        for pid in pids_named(name):
            if netns_of(pid) == ino:
                return pid
        return None

    def mem_lines(self, n):
        return self.serial(n).count("MEM ok")

    def check_guest(self, n, what):
        super().check_guest(n, what)
        for node in NODES:
            self.assertNotIn("MEM MISMATCH", self.serial(node),
                             "%s: the guest's memory on %s" % (what, node))
        before = self.mem_lines(n)
        wait_for(lambda: self.mem_lines(n) > before, 120,
                 "%s: the guest's memory writer going on on %s" % (what, n))

    def one_fault(self, kind, primary, standby, sec):
        """Strikes @kind; returns the new (primary, standby, standby's
        colo-secondary pid)."""
        c = self.cluster
        if kind == "qemu":
            self.fault(kind, self.kill_vm_qemu, standby)
            return standby, primary, self.reprotected(kind, standby,
                                                      primary, None)
        if kind == "node":
            self.fault(kind, lambda: c.power_off(primary), standby)
            self.restart_node(primary)
            return standby, primary, self.reprotected(kind, standby,
                                                      primary, None)
        if kind == "colo-primary":
            def do():
                pid = self.node_pid("colo-primary", primary)
                self.assertIsNotNone(pid, "no colo-primary on " + primary)
                os.kill(pid, signal.SIGKILL)
            self.fault(kind, do, primary)
        elif kind == "colo-secondary":
            self.fault(kind, lambda: self.kill_secondary(standby), primary)
        elif kind == "stall":
            def do():
                pid = self.node_pid("colo-secondary", standby)
                self.assertIsNotNone(pid, "no colo-secondary on " + standby)
                os.kill(pid, signal.SIGSTOP)
                time.sleep(STALL_S)
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass            # the agent has ended it meanwhile
            self.fault(kind, do, primary)
        elif kind == "link":
            self.fault(kind, self.cut_link, primary)
            wait_for(lambda: not c.node_alive(standby), 60,
                     standby + " fenced")
            self.mend_link()
            self.restart_node(standby)
            return primary, standby, self.reprotected(kind, primary,
                                                      standby, None)
        return primary, standby, self.reprotected(kind, primary, standby,
                                                  sec)

    def print_state(self):
        """What a failed fault leaves to look at: the client, the guest's
        serial output, Pacemaker's view."""
        client = getattr(self, "client", None)
        if client:
            lines = self.stream.lines
            print("--- client: %s; %d lines, the last %.1f s ago: %s" % (
                "running" if client.poll() is None else
                "exited with %s" % client.returncode, len(lines),
                time.monotonic() - lines[-1][0] if lines else -1,
                lines[-1][1] if lines else "-"), file=sys.stderr)
        for n in NODES:
            print("--- %s srv/serial.log (tail)\n%s" % (
                n, self.serial(n)[-2000:]), file=sys.stderr)
        try:
            print("--- crm_mon\n" + ET.tostring(
                self.cluster.crm_mon(), encoding="unicode")[-3000:],
                file=sys.stderr)
        except Exception as e:      # a dead cluster is an answer too
            print("--- crm_mon: %s" % e, file=sys.stderr)

    def test_soak(self):
        c = self.cluster
        rnd = random.Random(SEED)
        counts = {k: 0 for k in FAULTS}
        sampler = None
        t_start = time.monotonic()
        try:
            for n in NODES:
                c.start_node(n)
            wait_for(lambda: c.online("n1") and c.online("n2"), 120,
                     "both nodes online with quorum", interval=1)
            c.configure(self.kernel, self.initrd, memwrite=MEMWRITE)
            wait_for(lambda: "serving on port 7777" in self.serial("n1"),
                     180, "the guest's service on n1", interval=0.5)
            # the client reads for as long as the soak strikes, and more
            # (its own end is not an outage)
            self.start_client(seconds=SECONDS + 1800)
            _, sec = self.wait_protected("n1", "n2")
            sampler = Sampler(c, OUT)
            sampler.sample()
            primary, standby = "n1", "n2"
            deadline = time.monotonic() + SECONDS
            while time.monotonic() < deadline:
                time.sleep(min(rnd.uniform(*GAP),
                               max(0, deadline - time.monotonic())))
                if time.monotonic() >= deadline:
                    break
                kind = rnd.choice(FAULTS)
                counts[kind] += 1
                print("soak: %6.0f s: %s" % (time.monotonic() - t_start,
                                               kind), flush=True)
                primary, standby, sec = self.one_fault(kind, primary,
                                                       standby, sec)
            self.check_guest(primary, "the end of the soak")
            sampler.sample()
        except Exception:
            print(c.logs_text(), file=sys.stderr)
            self.print_state()
            raise
        finally:
            if sampler:
                sampler.close()
            summary = {"seconds": round(time.monotonic() - t_start),
                       "faults": counts,
                       "failovers": sum(1 for f in self.figures
                                        if f["scenario"] in ("qemu",
                                                             "node")),
                       "reprotections": sum(1 for f in self.figures
                                            if "reprotected_after_s" in f),
                       "figures": self.figures}
            with open(OUT + ".summary.json", "w") as f:
                json.dump(summary, f, indent=1)
            print("soak: " + json.dumps({k: v for k, v in summary.items()
                                         if k != "figures"}), flush=True)


if __name__ == "__main__":
    colotest.main()
