"""Small helpers every test uses: waiting for a condition, hashing files,
reading lines, the test case with its own temporary folder, and main()
with meson's exit statuses."""

import hashlib
import os
import shutil
import sys
import tempfile
import time
import unittest

from .paths import DATA, EXIT_SKIP


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def folder_bytes(path):
    """The bytes a file or folder tree takes (allocated blocks: on tmpfs,
    the memory it costs); 0 if it is gone."""
    if not os.path.isdir(path):
        try:
            return os.lstat(path).st_blocks * 512
        except OSError:
            return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def read_manifest():
    """{stream: {block file name: sha256}} from tests/data/ram-manifest.tsv"""
    out = {}
    with open(os.path.join(DATA, "ram-manifest.tsv")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            stream, block, _size, digest = line.rstrip("\n").split("\t")
            out.setdefault(stream, {})[block] = digest
    return out


def wait_for(predicate, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(interval)


def main():
    """unittest.main for the test scripts, with meson's exit statuses:
    0 all passed, 1 a failure or error, 77 something was skipped (each
    reason is printed, so a missing QEMU is never a silent pass)."""
    prog = unittest.main(verbosity=2, exit=False)
    r = prog.result
    if not r.wasSuccessful():
        raise SystemExit(1)
    if r.skipped or r.testsRun == 0:
        for test, why in r.skipped:
            print("SKIP: %s: %s" % (test.id(), why), file=sys.stderr)
        if r.testsRun == 0:
            print("SKIP: no test ran", file=sys.stderr)
        raise SystemExit(EXIT_SKIP)
    raise SystemExit(0)


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def complete_lines(text):
    """The lines of @text that have their newline: QEMU writes the serial
    port a character at a time, so the last line of a file read while
    the guest prints may be cut ("colo-guest C=01" for C=01d10000)."""
    return text.split("\n")[:-1]


def kill_pid(pid):
    """SIGKILL a process we did not start ourselves (a resumed QEMU)."""
    if pid:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


class TempDirTestCase(unittest.TestCase):
    def setUp(self):
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.tmp = tempfile.mkdtemp(prefix="colo-test-", dir=base)
        # colo-primary's work folder inside ours: removed with it even
        # when a test SIGKILLs colo-primary
        os.environ["COLO_PRIMARY_RUNDIR"] = self.tmp

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
