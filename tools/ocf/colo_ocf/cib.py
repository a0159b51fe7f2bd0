"""The cluster: this node and its peer, the facts the agent keeps in the
CIB, promotion scores, and the peer's state as Pacemaker sees it."""

import os
import socket
import subprocess
import xml.etree.ElementTree as ET

from .ocf import Failure, OCF_ERR_GENERIC, RSC, in_cluster, log, run
from .params import param
from .policy import boot_allowed


def my_node():
    n = os.environ.get("OCF_RESKEY_CRM_meta_on_node")
    if n:
        return n
    try:
        p = run(["crm_node", "-n"], timeout=10)
        if p.returncode == 0 and p.stdout.strip():
            return p.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return os.uname().nodename


def cluster_nodes():
    """{name: "member"|"lost"} as corosync knows them; {} outside."""
    try:
        p = run(["crm_node", "-l"], timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    nodes = {}
    if p.returncode == 0:
        for line in p.stdout.splitlines():
            f = line.split()
            if len(f) >= 3:
                nodes[f[1]] = f[2]
    return nodes


def peer_node():
    me = my_node()
    for n in sorted(cluster_nodes()):
        if n != me:
            return n
    return None


def node_address(node):
    for item in param("addresses").split():
        n, _, a = item.partition("=")
        if n == node and a:
            return a
    return node


def prop_name(what):
    return "colo-%s-%s" % (RSC, what)


def cib_get(what):
    try:
        p = run(["crm_attribute", "--type", "crm_config", "--name",
                 prop_name(what), "--query", "--quiet"], timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    v = p.stdout.strip()
    return v if p.returncode == 0 and v else None


def cib_set(what, value):
    """Writes a cluster property; in a cluster a failure is an error."""
    argv = ["crm_attribute", "--type", "crm_config", "--name",
            prop_name(what)]
    argv += ["--update", value] if value is not None else ["--delete"]
    try:
        p = run(argv, timeout=30)
        ok = p.returncode == 0
        why = p.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        ok, why = False, str(e)
    if not ok:
        if in_cluster():
            raise Failure(OCF_ERR_GENERIC, "cannot write %s to the CIB: %s"
                          % (prop_name(what), why))
        log("warning", "outside a cluster: %s not recorded" % prop_name(what))


def node_attr(node, what, value=None, delete=False):
    """A transient node attribute: read it, set it or delete it."""
    argv = ["crm_attribute", "--node", node, "--lifetime", "reboot",
            "--name", prop_name(what)]
    if delete:
        argv.append("--delete")
    elif value is not None:
        argv += ["--update", value]
    else:
        argv += ["--query", "--quiet"]
    try:
        p = run(argv, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if value is None and not delete:
        v = p.stdout.strip()
        return v if p.returncode == 0 and v else None
    return p.returncode == 0


def set_score(score):
    if not in_cluster():
        return
    argv = ["crm_master", "-Q", "-l", "reboot"]
    argv += ["-D"] if score is None else ["-v", str(score)]
    try:
        run(argv, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        pass


def node_state(node):
    """("online"|"offline"|"unclean"|"unknown") of @node, from crm_mon."""
    try:
        p = run(["crm_mon", "--one-shot", "--output-as=xml"], timeout=20)
        root = ET.fromstring(p.stdout)
    except (OSError, subprocess.TimeoutExpired, ET.ParseError):
        return "unknown"
    for n in root.iter("node"):
        if n.get("name") == node and n.get("online") is not None:
            if n.get("unclean") == "true":
                return "unclean"
            return "online" if n.get("online") == "true" else "offline"
    return "unknown"


def membership_settle_s():
    """How long corosync takes to notice a lost node (token + consensus)
    and a second more: a peer it still counts as a member after that,
    counting from when we lost the peer's standby, shares our CIB."""
    total = 0
    for key, default in (("runtime.config.totem.token", 3000),
                         ("runtime.config.totem.consensus", 3600)):
        v = default
        try:
            p = run(["corosync-cmapctl", "-g", key], timeout=10)
            v = int(p.stdout.split("=")[-1].strip())
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        total += v
    return total / 1000.0 + 1.0


def cut_connections(node):
    """Aborts our TCP connections to @node's replication address (a dead
    or partitioned peer answers nothing; QEMU's NBD client and
    colo-secondary would otherwise wait for TCP to give up)."""
    if not node:
        return
    addr = node_address(node)
    try:
        socket.inet_aton(addr)
    except OSError:
        try:
            addr = socket.gethostbyname(addr)
        except OSError:
            return
    try:
        run(["ss", "-K", "dst", addr], timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        pass


def may_boot():
    """(the VM may boot from the disks here, why not): nothing newer is
    anywhere, as the CIB tells."""
    return boot_allowed(my_node(), cib_get("vm-node"), cib_get("standby"),
                        param("initial_node"))
