"""The promoted side: colo-primary protecting the VM into the peer's
standby, the standby's property in the CIB, and when held output may go
once a session is lost."""

import os
import shlex
import signal
import time

from .cib import (cib_get, cib_set, cut_connections, membership_settle_s,
                  my_node, node_attr, node_state, peer_node, set_score)
from .ocf import (Failure, OCF_ERR_GENERIC, OCF_RUNNING_PROMOTED,
                  SCORE_PROMOTED, binary, in_cluster, log, read_json, remove,
                  run, run_path, write_json)
from .params import param
from .policy import release_verdict, session_verdict
from .procs import alive, spawn
from .qmp import QmpError, qmp_cmd
from .vm import TLS_ID, disks, qemu_status, tls_dir, vm_cmd


def primary_state():
    return read_json(run_path("primary.json")) or {}


def save_primary_state(st):
    write_json(run_path("primary.json"), st)


def vm_names(vm):
    """The options that name the VM to colo-primary."""
    if vm.get("domain"):
        return ["--libvirt-domain", vm["domain"], "--libvirt-uri",
                param("libvirt_uri")]
    return ["--qmp", vm["qmp"], "--ram-file", vm["ram"], "--qemu-pid",
            str(vm["pid"])]


def start_primary(vm, peer, token):
    addr, port, nbd_port, _ = token.split(":", 3)
    mon = run_path("primary.qmp")
    remove(mon)
    argv = [binary("colo_primary")] + vm_names(vm) + [
            "--connect", "tcp:%s:%s" % (addr, port),
            "--monitor", "unix:%s,server=on,wait=off" % mon,
            "--x-checkpoint-delay", param("checkpoint_interval"),
            "--held-output", "keep"]
    for node, _ in disks():
        argv += ["--disk", "%s=nbd://%s:%s/%s" % (node, addr, nbd_port,
                                                  node)]
    tls = tls_dir()
    if tls:
        # the peer's certificate must name the address we connect to
        argv += ["--object", "tls-creds-x509,id=%s,dir=%s,endpoint=client"
                 % (TLS_ID, tls), "--tls-creds", TLS_ID]
    log("info", "protecting the VM into %s: %s" % (peer, shlex.join(argv)))
    rec = spawn(argv, "colo-primary.log")
    rec.update(qmp=mon, peer=peer, token=token, checkpoints=0,
               progress_at=time.time())
    save_primary_state({"session": rec})


def primary_progress(sess):
    """colo-primary's query-migrate, or None if it does not answer."""
    try:
        return qmp_cmd(sess["qmp"], "query-migrate", timeout=5)
    except (QmpError, ValueError):
        return None


def release_output(vm):
    names = vm_names(vm)[:4] if vm.get("domain") else \
        ["--qmp", vm["agent_qmp"]]
    p = run([binary("colo_primary")] + names + ["--release-held-output"],
            timeout=30)
    if p.returncode != 0:
        raise Failure(OCF_ERR_GENERIC, "releasing the VM's held output: %s"
                      % p.stderr.strip())
    log("info", "the VM goes on alone: " + p.stdout.strip())
    # colo-primary may have been killed with the VM stopped for a
    # checkpoint; the VM always runs under the agent
    try:
        st = vm_cmd(vm, "query-status")
        if st and st.get("status") == "paused":
            vm_cmd(vm, "cont")
    except QmpError as e:
        log("warning", "QEMU: %s" % e)


def end_session(st, why):
    """The session with the standby is over: from now on the standby's
    checkpoint is not the VM's, so it must not be promoted."""
    sess = st.get("session")
    if sess and alive(sess):
        os.kill(sess["pid"], signal.SIGKILL)
    # a link that drops packets leaves QEMU's mirror writes waiting for
    # TCP, and QEMU's main loop with them (a stop drains them): abort our
    # connections to the peer now.  Safe at once: what the VM writes from
    # here on stays local, and its output stays held.
    if sess:
        cut_connections(sess.get("peer"))
    log("warning", "protection ended (%s); the VM's output stays held until "
        "the standby can no longer take over" % why)
    st["session"] = None
    st["lost"] = {"at": time.time(), "peer": sess.get("peer") if sess else
                  None, "token": sess.get("token") if sess else None}
    st["done_token"] = sess.get("token") if sess else st.get("done_token")
    save_primary_state(st)


def settle_lost(vm, st):
    """After a session ended: revoke the standby, then let the held output
    out once the peer cannot be promoted from its old checkpoint."""
    lost = st["lost"]
    peer = lost.get("peer")
    standby = cib_get("standby")
    if standby and standby != my_node():
        cib_set("standby", None)
    cut_connections(peer)
    state = node_state(peer) if peer and in_cluster() else "offline"
    waited = time.time() - lost["at"]
    settle = membership_settle_s() if state == "online" else 0.0
    ok, why = release_verdict(state, waited, settle)
    if not ok:
        if state != "online":
            log("info", "%s: %s" % (peer, why))
        return False
    release_output(vm)
    st["lost"] = None
    save_primary_state(st)
    return True


def watch_session(vm):
    """The promoted side's work in monitor and notify: keep the standby's
    property true, notice a lost session, settle it, protect again."""
    st = primary_state()
    sess = st.get("session")
    if sess:
        if not alive(sess):
            end_session(st, "colo-primary exited (see colo-primary.log)")
        else:
            info = primary_progress(sess)
            # no answer is no progress (colo-primary may wait on QEMU)
            n = (info or {}).get("x-colo-checkpoints",
                                 sess.get("checkpoints", 0))
            status = (info or {}).get("status")
            if n != sess.get("checkpoints"):
                sess["checkpoints"] = n
                sess["progress_at"] = time.time()
                save_primary_state(st)
            verdict, why = session_verdict(
                status, n, time.time() - sess["progress_at"],
                int(param("stall_timeout")) / 1000.0)
            if verdict == "end":
                end_session(st, why)
            elif verdict == "committed" and \
                    cib_get("standby") != sess["peer"]:
                cib_set("standby", sess["peer"])
                log("info", "%s holds a committed checkpoint: it may take "
                    "over" % sess["peer"])
    st = primary_state()
    if st.get("lost"):
        try:
            if not settle_lost(vm, st):
                return
        except Failure as e:
            # e.g. QEMU busy: the output stays held, next monitor again
            log("warning", "output still held: %s" % e)
            return
        st = primary_state()
    if not st.get("session") and in_cluster():
        peer = peer_node()
        token = node_attr(peer, "ready") if peer else None
        if token and token != st.get("done_token"):
            start_primary(vm, peer, token)


def monitor_promoted(vm):
    # the session first: a stalled one can hold QEMU's main loop, which
    # ending it frees
    watch_session(vm)
    st = primary_state()
    sess = st.get("session")
    if sess and alive(sess) and time.time() - sess.get("progress_at", 0) \
            < 2 * int(param("stall_timeout")) / 1000.0 and \
            sess.get("checkpoints", 0) > 0:
        # colo-primary checkpoints QEMU right now: that is our answer,
        # and QEMU's monitor is left to it
        set_score(SCORE_PROMOTED)
        return OCF_RUNNING_PROMOTED
    peer = (sess or {}).get("peer") or (st.get("lost") or {}).get("peer")
    status = qemu_status(vm, 12, peer)
    if status is None and sess:
        end_session(st, "QEMU does not answer while protected")
        status = qemu_status(vm, 12, peer)
    if status is None:
        # alive but not answering: a VM whose block I/O waits is not a
        # failed VM; give it a while before Pacemaker recovers it
        since = st.get("unanswered_since") or time.time()
        st = primary_state()
        st["unanswered_since"] = since
        save_primary_state(st)
        if time.time() - since > 90:
            set_score(None)
            raise Failure(OCF_ERR_GENERIC, "QEMU has not answered for %d s"
                          % (time.time() - since))
        set_score(SCORE_PROMOTED)
        return OCF_RUNNING_PROMOTED
    if st.get("unanswered_since"):
        st = primary_state()
        st.pop("unanswered_since", None)
        save_primary_state(st)
    if status.get("status") not in ("running", "paused", "finish-migrate",
                                    "inmigrate", "postmigrate"):
        set_score(None)
        raise Failure(OCF_ERR_GENERIC, "the VM is %s" % status.get("status"))
    if primary_state().get("lost"):
        try:
            settle_lost(vm, primary_state())
        except Failure as e:
            log("warning", "output still held: %s" % e)
    set_score(SCORE_PROMOTED)
    return OCF_RUNNING_PROMOTED
