"""What every part of the agent shares: OCF's exit codes, the promotion
scores, the resource's folders and files, the log, running a command."""

import json
import os
import shutil
import subprocess
import sys
import time

from .params import param


OCF_SUCCESS = 0


OCF_ERR_GENERIC = 1


OCF_ERR_ARGS = 2


OCF_ERR_UNIMPLEMENTED = 3


OCF_ERR_INSTALLED = 5


OCF_ERR_CONFIGURED = 6


OCF_NOT_RUNNING = 7


OCF_RUNNING_PROMOTED = 8


SCORE_PROMOTED = 100    # the VM runs here


SCORE_STANDBY = 50      # a committed checkpoint of the running VM is here


SCORE_BOOT = 10         # may boot the VM from its disks (nothing newer)


class Failure(Exception):
    """An action fails with @rc; the message goes to the log."""

    def __init__(self, rc, msg):
        super().__init__(msg)
        self.rc = rc


def resource_name():
    inst = os.environ.get("OCF_RESOURCE_INSTANCE", "colo")
    return inst.split(":")[0]


RSC = resource_name()


def log(level, msg):
    line = "%s colo(%s) %s: %s" % (time.strftime("%H:%M:%S"), RSC, level, msg)
    print(line, file=sys.stderr, flush=True)
    try:
        with open(os.path.join(state_dir(), "agent.log"), "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def state_dir():
    return param("state_dir") or "/var/lib/colo-standby/" + RSC


def ram_dir():
    return param("ram_dir") or "/dev/shm/colo-standby/" + RSC


def run_dir():
    """Runtime state: gone with a reboot (tmpfs), as the processes are."""
    return os.environ.get("COLO_OCF_RUN_DIR", "/run/colo-standby/" + RSC)


def run_path(name):
    return os.path.join(run_dir(), name)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def binary(name):
    path = param(name)
    found = shutil.which(path)
    if not found:
        raise Failure(OCF_ERR_INSTALLED, "%s: not found (%s)" % (name, path))
    return found


def in_cluster():
    """Run by Pacemaker (not by hand or ocf-tester)."""
    return "OCF_RESKEY_CRM_meta_clone_max" in os.environ or \
        "OCF_RESKEY_CRM_meta_promoted_max" in os.environ or \
        "OCF_RESKEY_CRM_meta_master_max" in os.environ


def run(argv, check=False, timeout=30):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise Failure(OCF_ERR_GENERIC, "%s: %s" % (" ".join(argv),
                                                   p.stderr.strip()))
    return p


def ensure_dirs():
    for d in (state_dir(), run_dir()):
        os.makedirs(d, exist_ok=True)


def is_started():
    return os.path.exists(run_path("active"))
