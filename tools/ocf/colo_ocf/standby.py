"""The unpromoted side: colo-secondary, the standby that holds the last
committed checkpoint, and failover from it into a QEMU."""

import os
import shlex
import shutil
import time

from .cib import (cib_get, cut_connections, may_boot, my_node, node_address,
                  node_attr, peer_node, set_score)
from .ocf import (Failure, OCF_ERR_GENERIC, OCF_SUCCESS, RSC, SCORE_BOOT,
                  SCORE_STANDBY, binary, in_cluster, log, ram_dir, read_json,
                  remove, run_path, write_json)
from .domain import domain_record, libvirt_mode
from .params import param
from .policy import standby_verdict
from .procs import (alive, kill, proc_record, spawn, stop_recorded,
                    wait_socket)
from .qmp import Qmp, QmpError
from .vm import TLS_ID, device_args, disks, ensure_taps, tls_dir


def secondary_record():
    rec = read_json(run_path("secondary.json"))
    return rec if alive(rec) else None


def failover_args():
    """How colo-secondary resumes the VM: into a libvirt domain of the
    same XML, or a QEMU of ours with the VM's devices."""
    if libvirt_mode():
        return ["-failover-libvirt-xml", param("libvirt_xml"),
                "-failover-libvirt-uri", param("libvirt_uri")]
    return ["-failover-qemu", binary("qemu"),
            "-failover-args", shlex.join(device_args())]


def start_secondary(keep_ram):
    me = my_node()
    addr = node_address(me)
    ram = ram_dir()
    if not keep_ram:
        shutil.rmtree(ram, ignore_errors=True)
    os.makedirs(ram, exist_ok=True)
    ensure_taps()
    qmp = run_path("secondary.qmp")
    remove(qmp)
    argv = [binary("colo_secondary"), "-name", RSC, "-ram-dir", ram,
            "-qmp", "unix:%s,server=on,wait=off" % qmp,
            "-incoming", "defer", "-failover", "on"] + failover_args()
    for node, image in disks():
        argv += ["-blockdev", "driver=file,node-name=%s,filename=%s"
                 % (node, image)]
    tls = tls_dir()
    if tls:
        argv += ["-object", "tls-creds-x509,id=%s,dir=%s,endpoint=server,"
                 "verify-peer=on" % (TLS_ID, tls)]
    log("info", "starting the standby: " + shlex.join(argv))
    rec = spawn(argv, "colo-secondary.log")
    wait_socket(qmp, rec, "colo-secondary")
    q = Qmp(qmp)
    try:
        q.cmd("migrate-set-capabilities", capabilities=[
            {"capability": "x-colo", "state": True},
            {"capability": "events", "state": True}])
        if tls:
            q.cmd("migrate-set-parameters", **{"tls-creds": TLS_ID})
        q.cmd("migrate-incoming", uri="tcp:%s:%s"
              % (addr, param("migration_port")))
        if disks():
            q.cmd("nbd-server-start", addr={"type": "inet", "data": {
                "host": addr, "port": param("nbd_port")}},
                **({"tls-creds": TLS_ID} if tls else {}))
            for node, _ in disks():
                q.cmd("nbd-server-add", device=node, writable=True)
    except QmpError as e:
        kill(rec)
        raise Failure(OCF_ERR_GENERIC, "colo-secondary: %s" % e)
    finally:
        q.close()
    rec.update(qmp=qmp, token="%s:%s:%s:%d-%s" % (
        addr, param("migration_port"), param("nbd_port"), rec["pid"],
        rec["start"]))
    write_json(run_path("secondary.json"), rec)
    if in_cluster():
        node_attr(me, "ready", rec["token"])
    return rec


def stop_secondary():
    stop_recorded("secondary.json", "qmp", term_wait=10)
    if in_cluster():
        node_attr(my_node(), "ready", delete=True)


def secondary_status(rec):
    """(migration status, colo status) of colo-secondary, or None."""
    try:
        q = Qmp(rec["qmp"], 10)
        try:
            return q.cmd("query-migrate"), q.cmd("query-colo-status")
        finally:
            q.close()
    except (QmpError, ValueError):
        return None


def monitor_unpromoted(rec):
    me = my_node()
    info = secondary_status(rec)
    if info is None:
        set_score(None)
        raise Failure(OCF_ERR_GENERIC, "colo-secondary does not answer")
    mig, colo = info
    status = mig.get("status", "none")
    n = colo.get("x-checkpoints", 0)
    standby = cib_get("standby") if in_cluster() else None
    # progress of the session, to tell a live one from one whose link
    # drops everything
    prog = read_json(run_path("secondary-progress.json")) or {}
    if prog.get("n") != n or prog.get("token") != rec.get("token"):
        prog = {"n": n, "at": time.time(), "token": rec.get("token")}
        write_json(run_path("secondary-progress.json"), prog)
    stalled = time.time() - prog["at"] > int(param("stall_timeout")) / 1000.0
    verdict = standby_verdict(me, standby, status, colo, stalled)
    if verdict == "standby":
        set_score(SCORE_STANDBY)
        return OCF_SUCCESS
    if verdict == "waiting":
        # waiting for a primary: a candidate for booting only
        ok, _ = may_boot()
        set_score(SCORE_BOOT if ok else None)
        return OCF_SUCCESS
    set_score(None)
    if verdict == "syncing":
        return OCF_SUCCESS      # being synced; not (yet) the standby
    raise Failure(OCF_ERR_GENERIC, "the standby lost its primary (migration "
                  "%s, colo mode %s, %d checkpoints%s) and is not the one "
                  "that may take over: restart it to be protected again"
                  % (status, colo.get("mode"), n,
                     ", stalled" if stalled else ""))


def failover(rec):
    """Resumes the VM from the standby's last committed checkpoint."""
    cut_connections(peer_node())
    q = Qmp(rec["qmp"], 30)
    try:
        q.cmd("x-colo-lost-heartbeat")
        deadline = time.monotonic() + 120
        while True:
            colo = q.cmd("query-colo-status")
            state = colo.get("x-failover")
            if state == "done":
                break
            if state == "failed" or time.monotonic() > deadline:
                raise Failure(OCF_ERR_GENERIC, "failover: %s" % colo.get(
                    "x-failover-error", "timed out"))
            time.sleep(0.05)
        if colo.get("x-failover-libvirt-domain"):
            vm = domain_record(colo["x-failover-libvirt-domain"],
                               "failover")
            pid = vm["pid"]
        else:
            pid = colo["x-failover-pid"]
            vm = proc_record(pid)
            vm.update(qmp=colo["x-failover-qmp"], how="failover",
                      agent_qmp=run_path("vm-agent.qmp"),
                      ram=os.path.join(ram_dir(), "pc.ram"))
        vm["checkpoint"] = colo.get("x-checkpoints")
        q.cmd("quit")
    except QmpError as e:
        raise Failure(OCF_ERR_GENERIC, "failover: colo-secondary: %s" % e)
    finally:
        q.close()
    write_json(run_path("vm.json"), vm)
    kill(rec, term_wait=10)
    remove(run_path("secondary.json"))
    log("info", "failover: the VM runs from checkpoint %s (QEMU pid %d)"
        % (vm.get("checkpoint"), pid))
    return vm
