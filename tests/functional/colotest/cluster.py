"""The test cluster of test_cluster.py: two nodes, each a network
namespace with a private mount namespace running Debian's corosync and
pacemaker (tests/cluster/node.sh), a LAN namespace between the guests and
a client, the agent installed as an OCF provider, and what the test asks
of it (roles, CIB properties, crm_mon)."""

import os
import shutil
import subprocess
import threading
import time
import unittest
import xml.etree.ElementTree as ET

from .base import read_text
from .paths import PRIMARY_AGENT, SECONDARY, SOURCE_ROOT
from .procs import qemu_binary
from .protected import GUEST_IP, GUEST_MAC
from .tls import make_tls_node_certs

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
        # as installed: the entry point, its package next to it (one of
        # the places it looks)
        shutil.copy(AGENT, os.path.join(shared_ocf, "colo"))
        shutil.copytree(os.path.join(os.path.dirname(AGENT), "colo_ocf"),
                        os.path.join(shared_ocf, "colo_ocf"),
                        ignore=shutil.ignore_patterns("__pycache__"))
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
        certs = make_tls_node_certs(
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

    def configure(self, kernel, initrd, memwrite=None):
        """The fence device and the VM's resource; @memwrite MIB:RATE
        runs the guest's memory writer too (the soak)."""
        append = "console=ttyS0 quiet colo.run=service colo.ip=%s/24" % \
            GUEST_IP
        if memwrite:
            append += " colo.memwrite=" + memwrite
        qemu_args = (
            "-accel tcg -kernel %s -initrd %s -append '%s' -chardev file,"
            "id=ser0,path=/srv/serial.log,append=on -serial chardev:ser0 "
            "-device virtio-blk-pci,drive=disk0" % (kernel, initrd, append))
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
