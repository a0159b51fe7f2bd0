"""The VM: its QEMU arguments, disks, NICs and TLS folder from the
parameters; booting it from its disks, asking and stopping its QEMU."""

import os
import shlex
import shutil
import time

from .cib import cut_connections
from .domain import (boot_domain, domain_qmp, libvirt_mode, stop_domain)
from .ocf import (Failure, OCF_ERR_CONFIGURED, RSC, binary, log, ram_dir,
                  read_json, remove, run, run_path, write_json)
from .params import param
from .procs import alive, spawn, stop_recorded, wait_socket
from .qmp import QmpError, qmp_cmd


def vm_args():
    args = shlex.split(param("qemu_args"))
    f = param("qemu_args_file")
    if f:
        try:
            with open(f) as fh:
                args += shlex.split(fh.read())
        except OSError as e:
            raise Failure(OCF_ERR_CONFIGURED, "qemu_args_file: %s" % e)
    return args


TLS_ID = "colo-tls"


TLS_FILES = ("ca-cert.pem", "server-cert.pem", "server-key.pem",
             "client-cert.pem", "client-key.pem")


def tls_dir():
    """The folder of the link's x509 credentials, or "" for plain TCP."""
    d = param("tls_dir")
    if not d:
        return ""
    if "," in d:
        raise Failure(OCF_ERR_CONFIGURED, "tls_dir: %s has a comma (QEMU's "
                      "option syntax cannot take it)" % d)
    missing = [f for f in TLS_FILES if not os.path.isfile(os.path.join(d, f))]
    if missing:
        raise Failure(OCF_ERR_CONFIGURED, "tls_dir: %s has no %s"
                      % (d, ", ".join(missing)))
    return d


def disks():
    out = []
    for item in param("disks").split():
        node, _, image = item.partition("=")
        if not node or not image:
            raise Failure(OCF_ERR_CONFIGURED, "disks: %r is not NODE=IMAGE"
                          % item)
        out.append((node, image))
    return out


def nics():
    out = []
    for i, item in enumerate(param("nics").split()):
        spec = {}
        for kv in item.split(","):
            k, _, v = kv.partition("=")
            spec[k] = v
        if not spec.get("bridge") or not spec.get("mac"):
            raise Failure(OCF_ERR_CONFIGURED, "nics: %r needs bridge= and "
                          "mac=" % item)
        spec.setdefault("model", "virtio-net-pci")
        spec.setdefault("tap", ("cs%d-%s" % (i, RSC))[:15])
        spec["id"] = "colo-n%d" % i
        out.append(spec)
    return out


def nic_args():
    args = []
    for n in nics():
        args += ["-netdev", "tap,id=%s,ifname=%s,script=no,downscript=no"
                 % (n["id"], n["tap"]),
                 "-device", "%s,netdev=%s,mac=%s" % (n["model"], n["id"],
                                                     n["mac"])]
    return args


def ensure_taps():
    for n in nics():
        if not os.path.exists("/sys/class/net/" + n["tap"]):
            run(["ip", "tuntap", "add", "dev", n["tap"], "mode", "tap"],
                check=True)
        run(["ip", "link", "set", n["tap"], "master", n["bridge"]],
            check=True)
        run(["ip", "link", "set", n["tap"], "up"], check=True)


def device_args():
    """What a booted VM and a failover QEMU both get; the second QMP
    monitor is the agent's (QEMU serves one client per monitor, and
    colo-primary holds the other)."""
    return ["-name", "guest=" + RSC, "-nodefaults", "-display", "none",
            "-qmp", "unix:%s,server=on,wait=off" % run_path("vm-agent.qmp")] \
        + nic_args() + vm_args()


def vm_record():
    rec = read_json(run_path("vm.json"))
    return rec if alive(rec) else None


def boot_vm():
    """Starts the VM from its disks (the cluster has no newer state)."""
    if libvirt_mode():
        rec = boot_domain()
        write_json(run_path("vm.json"), rec)
        return rec
    ram = ram_dir()
    shutil.rmtree(ram, ignore_errors=True)
    os.makedirs(ram, exist_ok=True)
    ensure_taps()
    qmp = run_path("vm.qmp")
    remove(qmp)
    remove(run_path("vm-agent.qmp"))
    mem = int(param("memory"))
    argv = [binary("qemu"), "-machine", "%s,memory-backend=pc.ram"
            % param("machine"),
            "-object", "memory-backend-file,id=pc.ram,size=%dM,mem-path=%s,"
            "share=on" % (mem, os.path.join(ram, "pc.ram")),
            "-m", "%dM" % mem,
            "-qmp", "unix:%s,server=on,wait=off" % qmp]
    for node, image in disks():
        argv += ["-blockdev", "driver=raw,node-name=%s,file.driver=file,"
                 "file.filename=%s" % (node, image)]
    argv += device_args()
    if os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.W_OK) and \
            "-accel" not in argv:
        argv += ["-accel", "kvm", "-accel", "tcg"]
    log("info", "booting the VM: " + shlex.join(argv))
    rec = spawn(argv, "qemu.log")
    wait_socket(qmp, rec, "QEMU")
    rec.update(qmp=qmp, agent_qmp=run_path("vm-agent.qmp"),
               ram=os.path.join(ram, "pc.ram"), how="boot")
    write_json(run_path("vm.json"), rec)
    return rec


def stop_vm():
    rec = read_json(run_path("vm.json"))
    if rec and rec.get("domain"):
        stop_domain(rec)
        remove(run_path("vm.json"))
        return
    stop_recorded("vm.json", "agent_qmp", term_wait=5)


def vm_cmd(vm, command, timeout=10):
    """@command on the VM's QEMU: the agent's own QMP socket, or libvirt's
    pass-through for a domain."""
    if vm.get("domain"):
        try:
            return domain_qmp(vm["domain"], command)
        except Failure as e:
            raise QmpError(str(e))
    return qmp_cmd(vm["agent_qmp"], command, timeout=timeout)


def qemu_status(vm, patience, peer):
    """QEMU's run state, asking for up to @patience seconds; between tries
    the connections to @peer are aborted again (a stop drains block I/O,
    and a mirror write to a peer that answers nothing holds QEMU's main
    loop until its socket fails).  None if QEMU never answered."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return vm_cmd(vm, "query-status", timeout=4)
        except QmpError as e:
            why = str(e)
        if time.monotonic() > deadline:
            log("warning", "QEMU does not answer: %s" % why)
            return None
        cut_connections(peer)
        time.sleep(0.5)
