"""The OCF actions, each a function returning its OCF exit code, and the
dispatch of main()."""

import os
import subprocess
import sys
import time

from .cib import cib_get, cib_set, may_boot, my_node, node_attr, set_score
from .ocf import (Failure, OCF_ERR_CONFIGURED, OCF_ERR_GENERIC,
                  OCF_ERR_UNIMPLEMENTED, OCF_NOT_RUNNING, OCF_SUCCESS,
                  SCORE_PROMOTED, binary, ensure_dirs, in_cluster, is_started,
                  log, read_json, remove, run_path)
from .params import meta_data, param
from .policy import promotion
from .procs import kill, orphan_vms, reap
from .protect import (monitor_promoted, primary_state, save_primary_state,
                      watch_session)
from .qmp import QmpError
from .standby import (failover, monitor_unpromoted, secondary_record,
                      secondary_status, start_secondary, stop_secondary)
from .domain import domain_name, libvirt_mode
from .vm import boot_vm, disks, nics, stop_vm, tls_dir, vm_args, vm_record


def action_start():
    ensure_dirs()
    if vm_record() or secondary_record():
        return OCF_SUCCESS
    keep = cib_get("standby") == my_node()
    start_secondary(keep_ram=keep)
    with open(run_path("active"), "w"):
        pass
    return OCF_SUCCESS


def action_stop():
    ensure_dirs()
    st = primary_state()
    sess = st.get("session")
    if sess:
        kill(sess)
    stop_vm()
    stop_secondary()
    for rec in orphan_vms():
        log("warning", "stopping a QEMU of this VM nobody recorded (pid %d)"
            % rec["pid"])
        kill(rec)
    remove(run_path("primary.json"))
    remove(run_path("active"))
    set_score(None)
    return OCF_SUCCESS


def action_monitor():
    ensure_dirs()
    vm = vm_record()
    if vm:
        return monitor_promoted(vm)
    if read_json(run_path("vm.json")):
        set_score(None)
        raise Failure(OCF_ERR_GENERIC, "the VM's QEMU is gone")
    rec = secondary_record()
    if rec:
        return monitor_unpromoted(rec)
    if is_started():
        set_score(None)
        raise Failure(OCF_ERR_GENERIC, "colo-secondary is gone")
    return OCF_NOT_RUNNING


def action_promote():
    ensure_dirs()
    me = my_node()
    if vm_record():
        return OCF_SUCCESS
    standby = cib_get("standby")
    rec = secondary_record()
    info = secondary_status(rec) if rec else None
    colo = info[1] if info else None
    if promotion(me, standby, colo, False) == "failover":
        failover(rec)
    else:
        ok, why = may_boot()
        if promotion(me, standby, colo, ok) == "refuse":
            raise Failure(OCF_ERR_GENERIC, "will not boot the VM here: " +
                          why)
        stop_secondary()
        boot_vm()
    if in_cluster():
        node_attr(me, "ready", delete=True)
    cib_set("vm-node", me)
    cib_set("standby", None)
    save_primary_state({})
    with open(run_path("active"), "w"):
        pass
    set_score(SCORE_PROMOTED)
    return OCF_SUCCESS


def action_demote():
    ensure_dirs()
    vm = vm_record()
    st = primary_state()
    if st.get("session"):
        kill(st["session"])
    remove(run_path("primary.json"))
    if vm or read_json(run_path("vm.json")):
        # what the VM did since the standby's checkpoint dies with it,
        # held output included: the standby (if any) takes over from there
        stop_vm()
    set_score(None)
    if not secondary_record():
        keep = cib_get("standby") == my_node()
        start_secondary(keep_ram=keep)
    with open(run_path("active"), "w"):
        pass
    return OCF_SUCCESS


def action_notify():
    ensure_dirs()
    kind = "%s-%s" % (os.environ.get("OCF_RESKEY_CRM_meta_notify_type", ""),
                      os.environ.get("OCF_RESKEY_CRM_meta_notify_operation",
                                     ""))
    vm = vm_record()
    if kind == "post-start" and vm:
        # a peer's standby just started: protect the VM into it now
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                watch_session(vm)
            except Failure as e:
                log("warning", str(e))
                break
            if primary_state().get("session"):
                break
            time.sleep(0.5)
    return OCF_SUCCESS


def action_validate():
    for name in ("qemu", "colo_secondary", "colo_primary"):
        binary(name)
    if libvirt_mode():
        return validate_domain()
    try:
        args = vm_args()
    except ValueError as e:
        raise Failure(OCF_ERR_CONFIGURED, "qemu_args: %s" % e)
    if not args:
        raise Failure(OCF_ERR_CONFIGURED, "qemu_args or libvirt_xml is "
                      "required")
    for bad in ("-m", "-qmp", "-daemonize", "-incoming"):
        if bad in args:
            raise Failure(OCF_ERR_CONFIGURED, "qemu_args: %s is the "
                          "agent's" % bad)
    try:
        if int(param("memory")) <= 0 or int(param("checkpoint_interval")) \
                < 0 or int(param("stall_timeout")) <= 0:
            raise ValueError
        int(param("migration_port"))
        int(param("nbd_port"))
    except ValueError:
        raise Failure(OCF_ERR_CONFIGURED, "memory, ports and times must be "
                      "numbers")
    for node, image in disks():
        if not os.path.isfile(image):
            raise Failure(OCF_ERR_CONFIGURED, "disk %s: %s is not a file"
                          % (node, image))
    nics()
    tls_dir()
    return OCF_SUCCESS


def validate_domain():
    """libvirt_xml: the domain's XML names the VM's devices, NICs and
    disks; the agent's own for a QEMU of its own stay empty."""
    for own in ("qemu_args", "qemu_args_file", "disks", "nics"):
        if param(own):
            raise Failure(OCF_ERR_CONFIGURED, "%s: not with libvirt_xml (the "
                          "domain's XML says it)" % own)
    domain_name()
    return OCF_SUCCESS


def usage():
    print("usage: %s {start|stop|monitor|promote|demote|notify|meta-data|"
          "validate-all}" % os.path.basename(sys.argv[0]))


def main():
    action = sys.argv[1] if len(sys.argv) > 1 else ""
    if action == "meta-data":
        meta_data()
        return OCF_SUCCESS
    if action in ("usage", "help"):
        usage()
        return OCF_SUCCESS
    handlers = {"start": action_start, "stop": action_stop,
                "monitor": action_monitor, "promote": action_promote,
                "demote": action_demote, "notify": action_notify,
                "validate-all": action_validate}
    if action not in handlers:
        usage()
        return OCF_ERR_UNIMPLEMENTED
    try:
        if action in ("start", "promote"):
            rc = action_validate()
            if rc != OCF_SUCCESS:
                return rc
        rc = handlers[action]()
    except Failure as e:
        log("error", "%s: %s" % (action, e))
        rc = e.rc
    except (OSError, QmpError, subprocess.SubprocessError) as e:
        log("error", "%s: %s" % (action, e))
        rc = OCF_ERR_GENERIC
    reap()
    if action == "stop" and rc not in (OCF_SUCCESS,):
        log("error", "stop failed: the cluster will fence this node")
    return rc
