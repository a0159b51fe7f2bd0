"""The VM as a libvirt domain (the libvirt_xml parameter): libvirt starts
and stops it from the XML, colo-primary reaches it with --libvirt-domain,
and the standby fails over into a domain of the same XML (docs/libvirt.rst).
The XML is the same file on both nodes; it names the devices, the NICs and
their MACs."""

import json
import time
import xml.etree.ElementTree as ET

from .ocf import Failure, OCF_ERR_CONFIGURED, OCF_ERR_GENERIC, log, run
from .params import param
from .procs import proc_record


def libvirt_mode():
    return bool(param("libvirt_xml"))


def domain_name():
    try:
        name = ET.parse(param("libvirt_xml")).getroot().findtext("name")
    except (OSError, ET.ParseError) as e:
        raise Failure(OCF_ERR_CONFIGURED, "libvirt_xml: %s" % e)
    if not name:
        raise Failure(OCF_ERR_CONFIGURED, "libvirt_xml: no <name>")
    return name


def virsh(*args, check=True, timeout=60):
    return run(["virsh", "-c", param("libvirt_uri")] + list(args),
               check=check, timeout=timeout)


def domain_qmp(name, command):
    """@command's "return", through libvirt's monitor pass-through."""
    p = virsh("qemu-monitor-command", name,
              json.dumps({"execute": command}), check=False, timeout=20)
    if p.returncode != 0:
        raise Failure(OCF_ERR_GENERIC, "domain %s: %s: %s"
                      % (name, command, p.stderr.strip()))
    reply = json.loads(p.stdout)
    if "error" in reply:
        raise Failure(OCF_ERR_GENERIC, "domain %s: %s: %s"
                      % (name, command, reply["error"].get("desc")))
    return reply.get("return")


def domain_pid(name):
    """QEMU's pid: the process of the domain's first vCPU thread."""
    tid = domain_qmp(name, "query-cpus-fast")[0]["thread-id"]
    with open("/proc/%d/status" % tid) as f:
        for line in f:
            if line.startswith("Tgid:"):
                return int(line.split()[1])
    raise Failure(OCF_ERR_GENERIC, "domain %s: no QEMU process" % name)


def domain_record(name, how):
    """The VM record of a running domain: its QEMU's pid (so the agent's
    liveness checks hold) and its name."""
    rec = proc_record(domain_pid(name))
    rec.update(domain=name, how=how)
    return rec


def boot_domain():
    name = domain_name()
    virsh("create", param("libvirt_xml"), timeout=120)
    log("info", "booted libvirt domain %s" % name)
    return domain_record(name, "boot")


def stop_domain(rec):
    """virsh destroy, then until its QEMU is gone."""
    virsh("destroy", rec["domain"], check=False)
    for _ in range(100):
        if virsh("domstate", rec["domain"], check=False).stdout.strip() \
                in ("", "shut off"):
            return
        time.sleep(0.1)
