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
import threading
import time
import unittest
import xml.etree.ElementTree as ET

import colotest
from colotest import (GUEST_IP, GUEST_MAC, LineStream, NETCLIENT,
                      PRIMARY_AGENT, SECONDARY, SOURCE_ROOT, qemu_binary,
                      read_text, require_linux_guest, service_stream_problems,
                      wait_for)

RSC = "colovm"
NODES = ("n1", "n2")
LINK = {"n1": "10.99.0.1", "n2": "10.99.0.2"}
CLUSTER_DIR = os.path.join(SOURCE_ROOT, "tests", "cluster")
AGENT = os.path.join(SOURCE_ROOT, "tools", "ocf", "colo")
DISK_MB = 64
MEM_MB = 256

COROSYNC_CONF = """totem {
    version: 2
    cluster_name: colotest
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: 1000
}
nodelist {
    node {
        ring0_addr: %(n1)s
        name: n1
        nodeid: 1
    }
    node {
        ring0_addr: %(n2)s
        name: n2
        nodeid: 2
    }
}
quorum {
    provider: corosync_votequorum
    two_node: 1
}
logging {
    to_logfile: yes
    logfile: /var/log/corosync/corosync.log
    to_stderr: no
    to_syslog: no
    timestamp: on
}
""" % LINK


def require_cluster_tools():
    missing = [t for t in ("corosync", "pacemakerd", "crm_mon", "cibadmin",
                           "crm_attribute", "ss", "nsenter")
               if not shutil.which(t)]
    if missing:
        raise unittest.SkipTest("missing: %s (scripts/install-deps.sh "
                                "installs corosync and pacemaker)"
                                % ", ".join(missing))


def text_of(path):
    """A log's text; empty while it does not exist yet."""
    return read_text(path) if os.path.exists(path) else ""


def netns_inode(ns):
    return os.stat("/run/netns/" + ns).st_ino


def pids_in_netns(inode):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/ns/net" % d) == "net:[%d]" % inode:
                out.append(int(d))
        except OSError:
            pass
    return out


def vm_processes():
    """pid -> netns inode of every live QEMU running our VM."""
    found = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
            if b"guest=" + RSC.encode() not in argv or \
                    not os.path.basename(argv[0]).startswith(b"qemu-system"):
                continue
            with open("/proc/%s/stat" % d) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            found[int(d)] = int(os.readlink("/proc/%s/ns/net" % d)
                                .split("[")[1].rstrip("]"))
        except (OSError, IndexError, ValueError):
            pass
    return found


def process_state(pid):
    """pid, state, netns and elapsed time of a process, for a message."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ns = os.readlink("/proc/%d/ns/net" % pid)
        return "pid %d state %s %s started at tick %s" % (
            pid, fields[0], ns, fields[19])
    except (OSError, IndexError):
        return "pid %d (gone)" % pid


class CopyWatch:
    """Counts the VM's QEMU processes every 0.1 s; remembers the most."""

    def __init__(self):
        self.lock = threading.Lock()
        self.peak = 0
        self.detail = []
        self.last_detail = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            found = vm_processes()
            with self.lock:
                if len(found) > self.peak:
                    # which processes, in which state: if two copies are
                    # ever seen, the failure says what they were
                    self.detail = [process_state(p) for p in found]
                self.peak = max(self.peak, len(found))
            time.sleep(0.1)

    def take_peak(self):
        with self.lock:
            p, self.peak = self.peak, len(vm_processes())
            self.last_detail, self.detail = self.detail, []
        return p

    def close(self):
        self.stop = True
        self.thread.join()


class Cluster:
    def __init__(self, workdir):
        self.workdir = workdir
        tag = "cl%d" % (os.getpid() % 100000)
        self.ns = {n: "%s-%s" % (tag, n) for n in NODES}
        self.ns["lan"] = tag + "-lan"
        self.procs = {}
        self.logs = {}
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "add", ns], check=True)
        self.inode = {n: netns_inode(self.ns[n]) for n in NODES}
        self.netns_dir = os.path.join(workdir, "netns")
        os.makedirs(self.netns_dir)
        for n in NODES:
            with open(os.path.join(self.netns_dir, n), "w") as f:
                f.write(str(self.inode[n]))
        self._network()
        self._folders()

    def ip(self, where, *args):
        subprocess.run(["ip", "-n", self.ns[where]] + list(args), check=True)

    def _network(self):
        n1, n2, lan = self.ns["n1"], self.ns["n2"], self.ns["lan"]
        # the cluster link (corosync, checkpoints, disk writes)
        subprocess.run(["ip", "link", "add", "c1", "netns", n1, "type",
                        "veth", "peer", "c2", "netns", n2], check=True)
        self.ip("n1", "addr", "add", LINK["n1"] + "/24", "dev", "c1")
        self.ip("n2", "addr", "add", LINK["n2"] + "/24", "dev", "c2")
        # the guests' LAN: br0 on each node, joined on the LAN namespace
        self.ip("lan", "link", "add", "lanbr", "type", "bridge")
        self.ip("lan", "addr", "add", "10.77.0.1/24", "dev", "lanbr")
        for i, n in ((1, "n1"), (2, "n2")):
            subprocess.run(["ip", "link", "add", "l%d" % i, "netns",
                            self.ns[n], "type", "veth", "peer", "p%d" % i,
                            "netns", lan], check=True)
            self.ip(n, "link", "add", "br0", "type", "bridge")
            self.ip(n, "link", "set", "l%d" % i, "master", "br0")
            self.ip("lan", "link", "set", "p%d" % i, "master", "lanbr")
            for dev in ("br0", "l%d" % i, "c%d" % i, "lo"):
                self.ip(n, "link", "set", dev, "up")
            self.ip("lan", "link", "set", "p%d" % i, "up")
        self.ip("lan", "link", "set", "lanbr", "up")
        self.ip("lan", "link", "set", "lo", "up")

    def _folders(self):
        shared_sbin = os.path.join(self.workdir, "sbin")
        shared_ocf = os.path.join(self.workdir, "ocf", "colo-standby")
        os.makedirs(shared_sbin)
        os.makedirs(shared_ocf)
        shutil.copy(os.path.join(CLUSTER_DIR, "fence_colotest"), shared_sbin)
        shutil.copy(AGENT, os.path.join(shared_ocf, "colo"))
        for d in (self.workdir, os.path.join(self.workdir, "ocf"),
                  shared_ocf):
            os.chmod(d, 0o755)
        for n in NODES:
            d = self.node_dir(n)
            for sub in ("etc-corosync", "lib-pacemaker/cib",
                        "lib-pacemaker/pengine", "lib-pacemaker/blackbox",
                        "lib-pacemaker/cores", "lib-corosync",
                        "log-pacemaker", "log-corosync", "srv/state"):
                os.makedirs(os.path.join(d, sub))
            with open(os.path.join(d, "etc-corosync", "corosync.conf"),
                      "w") as f:
                f.write(COROSYNC_CONF)
            subprocess.run(["chown", "-R", "hacluster:haclient",
                            os.path.join(d, "lib-pacemaker"),
                            os.path.join(d, "log-pacemaker")], check=True)
            with open(os.path.join(d, "srv", "disk0.img"), "wb") as f:
                f.truncate(DISK_MB << 20)
        # the link runs over TLS, as docs/cluster.rst tells operators to
        certs = colotest.make_tls_node_certs(
            os.path.join(self.workdir, "tls"), LINK)
        for n in NODES:
            shutil.copytree(certs[n], os.path.join(self.node_dir(n), "srv",
                                                   "tls"))

    def node_dir(self, n):
        return os.path.join(self.workdir, n)

    def start_node(self, n):
        log = open(os.path.join(self.workdir, "%s-node.log" % n), "ab")
        self.logs[n] = log
        self.procs[n] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[n], "unshare", "-m", "-u",
             "--propagation", "private", os.path.join(CLUSTER_DIR, "node.sh"),
             n, self.node_dir(n)], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)

    def power_off(self, n):
        """What the fence agent does: every process of the node dies."""
        for _ in range(100):
            pids = pids_in_netns(self.inode[n])
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        else:
            print("cluster: %s: processes still there after 5 s of SIGKILL: "
                  "%s" % (n, [process_state(p) for p in
                              pids_in_netns(self.inode[n])]), flush=True)
        if n in self.procs:
            self.procs.pop(n).wait()
            self.logs.pop(n).close()

    def node_alive(self, n):
        p = self.procs.get(n)
        return p is not None and p.poll() is None

    def run_on(self, n, *argv, check=True, timeout=60):
        """A command in node @n's namespaces (mount, net, uts)."""
        p = subprocess.run(["nsenter", "-t", str(self.procs[n].pid), "-m",
                            "-n", "-u"] + list(argv), capture_output=True,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError("%s on %s: %s %s" % (" ".join(argv), n,
                                                    p.stdout, p.stderr))
        return p

    def any_node(self):
        for n in NODES:
            if self.node_alive(n):
                return n
        raise RuntimeError("no node is up")

    def crm_mon(self, n=None):
        p = self.run_on(n or self.any_node(), "crm_mon", "--one-shot",
                        "--output-as=xml", check=False, timeout=30)
        try:
            return ET.fromstring(p.stdout)
        except ET.ParseError:
            return None

    def online(self, n):
        """Both nodes online in @n's view, with quorum."""
        if not self.node_alive(n):
            return False
        root = self.crm_mon(n)
        if root is None:
            return False
        dc = root.find("summary/current_dc")
        if dc is None or dc.get("with_quorum") != "true":
            return False
        return sorted(x.get("name") for x in root.iter("node")
                      if x.get("online") == "true") == list(NODES)

    def prop(self, what):
        p = self.run_on(self.any_node(), "crm_attribute", "--type",
                        "crm_config", "--name", "colo-%s-%s" % (RSC, what),
                        "--query", "--quiet", check=False)
        return p.stdout.strip() if p.returncode == 0 else None

    def roles(self):
        """node -> role of our clone's instance there."""
        root = self.crm_mon()
        out = {}
        if root is None:
            return out
        for r in root.iter("resource"):
            if r.get("id", "").split(":")[0] != RSC:
                continue
            for node in r.iter("node"):
                out[node.get("name")] = r.get("role")
        return out

    def vm_node(self):
        """(node, pid) of the one QEMU running the VM, or (None, None)."""
        procs = vm_processes()
        for pid, ino in procs.items():
            for n in NODES:
                if self.inode[n] == ino:
                    return n, pid
        return None, None

    def configure(self, kernel, initrd):
        qemu_args = (
            "-accel tcg -kernel %s -initrd %s -append 'console=ttyS0 quiet "
            "colo.run=service colo.ip=%s/24' -chardev file,id=ser0,"
            "path=/srv/serial.log,append=on -serial chardev:ser0 "
            "-device virtio-blk-pci,drive=disk0" % (kernel, initrd, GUEST_IP))
        params = {
            "qemu": qemu_binary(), "qemu_args": qemu_args,
            "memory": str(MEM_MB), "state_dir": "/srv/state",
            "disks": "disk0=/srv/disk0.img",
            "nics": "bridge=br0,mac=" + GUEST_MAC,
            "addresses": "n1=%s n2=%s" % (LINK["n1"], LINK["n2"]),
            "checkpoint_interval": "200", "stall_timeout": "4000",
            "initial_node": "n1", "tls_dir": "/srv/tls",
            "colo_secondary": SECONDARY,
            "colo_primary": PRIMARY_AGENT,
        }
        nv = "".join('<nvpair id="%s-%s" name="%s" value="%s"/>'
                     % (RSC, k, k, v.replace("&", "&amp;").replace(
                         "'", "&apos;").replace('"', "&quot;"))
                     for k, v in params.items())
        ops = "".join('<op id="%s-%s-%s" name="%s" interval="%s" '
                      'timeout="%s"%s/>' % (RSC, name, i, name, interval,
                                           timeout, extra)
                      for i, (name, interval, timeout, extra) in enumerate([
                          ("monitor", "3s", "60s", ' role="Promoted"'),
                          ("monitor", "4s", "60s", ' role="Unpromoted"'),
                          ("start", "0", "120s", ""),
                          ("stop", "0", "60s", ""),
                          ("promote", "0", "180s", ""),
                          ("demote", "0", "60s", ""),
                          ("notify", "0", "60s", "")]))
        n = self.any_node()
        for name, value in (("stonith-enabled", "true"),
                            ("stonith-timeout", "30s"),
                            ("priority-fencing-delay", "4s"),
                            ("cluster-recheck-interval", "20s")):
            self.run_on(n, "crm_attribute", "--type", "crm_config",
                        "--name", name, "--update", value)
        fence = ('<primitive id="fence" class="stonith" type="fence_colotest">'
                 '<instance_attributes id="fence-ia">'
                 '<nvpair id="fence-hosts" name="pcmk_host_list" '
                 'value="n1 n2"/>'
                 '<nvpair id="fence-check" name="pcmk_host_check" '
                 'value="static-list"/>'
                 '<nvpair id="fence-dir" name="netns_dir" value="%s"/>'
                 '</instance_attributes>'
                 '<operations><op id="fence-mon" name="monitor" '
                 'interval="60s"/></operations></primitive>'
                 % self.netns_dir)
        clone = ('<clone id="%(r)s-clone"><meta_attributes id="%(r)s-meta">'
                 '<nvpair id="%(r)s-m1" name="promotable" value="true"/>'
                 '<nvpair id="%(r)s-m2" name="promoted-max" value="1"/>'
                 '<nvpair id="%(r)s-m3" name="clone-max" value="2"/>'
                 '<nvpair id="%(r)s-m4" name="clone-node-max" value="1"/>'
                 '<nvpair id="%(r)s-m5" name="notify" value="true"/>'
                 '<nvpair id="%(r)s-m6" name="priority" value="10"/>'
                 '</meta_attributes>'
                 '<primitive id="%(r)s" class="ocf" provider="colo-standby" '
                 'type="colo"><instance_attributes id="%(r)s-ia">%(nv)s'
                 '</instance_attributes><operations>%(ops)s</operations>'
                 '</primitive></clone>' % {"r": RSC, "nv": nv, "ops": ops})
        self.run_on(n, "cibadmin", "--create", "-o", "resources",
                    "--xml-text", fence)
        self.run_on(n, "cibadmin", "--create", "-o", "resources",
                    "--xml-text", clone)

    def close(self):
        for n in NODES:
            self.power_off(n)
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], check=False)

    def logs_text(self):
        out = []
        for n in NODES:
            for rel in ("srv/state/agent.log", "srv/state/colo-primary.log",
                        "srv/state/colo-secondary.log"):
                t = text_of(os.path.join(self.node_dir(n), rel))
                out.append("--- %s %s (tail)\n%s" % (n, rel, t[-3000:]))
        return "\n".join(out)


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
            self.client = subprocess.Popen(
                ["ip", "netns", "exec", c.ns["lan"], sys.executable,
                 NETCLIENT, "lines", GUEST_IP, "7777", "3600"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.stream = LineStream(self.client)
            self.assertTrue(self.stream.wait_lines(5, 60))
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


def pids_named(name):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().strip() == name[:15]:
                        out.append(int(d))
            except OSError:
                pass
    return out


def netns_of(pid):
    try:
        return int(os.readlink("/proc/%d/ns/net" % pid).split("[")[1]
                   .rstrip("]"))
    except (OSError, IndexError, ValueError):
        return None


if __name__ == "__main__":
    colotest.main()
