"""Our daemons (QEMU, colo-secondary, colo-primary): started in a session
of their own, recorded as pid + start time (a recycled pid is not
ours), stopped."""

import os
import signal
import subprocess
import time

from .ocf import (Failure, OCF_ERR_GENERIC, RSC, read_json, remove, run_path,
                  state_dir)
from .qmp import Qmp, QmpError, qmp_cmd


def proc_start_time(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]
    except (OSError, IndexError):
        return None


def alive(rec):
    """@rec: {"pid", "start"} as written when it was started."""
    if not rec or not rec.get("pid"):
        return False
    return proc_start_time(rec["pid"]) == rec.get("start")


def proc_record(pid):
    return {"pid": pid, "start": proc_start_time(pid)}


def spawn(argv, log_name):
    """Starts a daemon of ours in its own session, all of its stdio on a
    log file, so that Pacemaker does not wait for it."""
    logf = open(os.path.join(state_dir(), log_name), "ab")
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                             stderr=subprocess.STDOUT, close_fds=True,
                             start_new_session=True)
    finally:
        logf.close()
    return proc_record(p.pid)


def kill(rec, term_wait=5.0):
    if not alive(rec):
        return
    try:
        os.kill(rec["pid"], signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + term_wait
    while alive(rec) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(rec):
        try:
            os.kill(rec["pid"], signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while alive(rec) and time.monotonic() < deadline:
            time.sleep(0.05)


def reap():
    """Our daemons are children of this process only briefly."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def wait_socket(path, rec, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            try:
                Qmp(path, 5).close()
                return
            except QmpError:
                pass
        if not alive(rec):
            break
        time.sleep(0.05)
    raise Failure(OCF_ERR_GENERIC, "%s did not come up (see %s)"
                  % (what, state_dir()))


def stop_recorded(record, qmp_key, term_wait):
    """Stops the daemon of the run folder's @record: "quit" on its QMP
    socket @qmp_key, then SIGTERM and SIGKILL; the record goes."""
    rec = read_json(run_path(record))
    if alive(rec):
        try:
            qmp_cmd(rec[qmp_key], "quit", timeout=5)
        except QmpError:
            pass
        kill(rec, term_wait=term_wait)
    remove(run_path(record))


def orphan_vms():
    """QEMUs of this resource in our network namespace that no record
    names (an agent killed by a timeout half way through a boot or a
    failover)."""
    try:
        mine = os.readlink("/proc/self/ns/net")
    except OSError:
        return []
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
            if b"guest=" + RSC.encode() in argv and \
                    os.readlink("/proc/%s/ns/net" % d) == mine:
                found.append(proc_record(int(d)))
        except OSError:
            pass
    return [r for r in found if r["start"]]
