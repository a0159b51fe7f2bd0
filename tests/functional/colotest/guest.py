"""Guests: the colo-guest's counters, the Linux guest (initramfs built as
newc cpio) run to completion, reference streams made with stock QEMU."""

import gzip
import os
import subprocess
import unittest

from .base import complete_lines, wait_for
from .paths import HALT_BIOS, LINUX_GUEST
from .procs import Qemu, qemu_command


def require_linux_guest():
    """(kernel, initrd) of the Linux guest; skips (visibly) without it."""
    kernel = os.path.join(LINUX_GUEST, "vmlinuz")
    initrd = os.path.join(LINUX_GUEST, "initramfs.cpio.gz")
    if not (os.path.exists(kernel) and os.path.exists(initrd)):
        raise unittest.SkipTest("the Linux guest is missing in %s "
                                "(scripts/build-guest.sh)" % LINUX_GUEST)
    return kernel, initrd


def cpio_newc(entries):
    """A newc cpio archive of (path, mode, data) entries."""
    out = b""
    for ino, (path, mode, data) in enumerate(entries, 1):
        name = path.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0]
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        out += hdr + name
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
    trailer = b"TRAILER!!!\0"
    out += b"070701" + b"".join(b"%08X" % f for f in
                                [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
                                 len(trailer), 0]) + trailer
    out += b"\0" * (-len(out) % 512)
    return out


def run_in_linux_guest(workdir, files, run, timeout, mem_mb=256, smp=2):
    """Boots the Linux guest (TCG) with @files ({path: bytes}, executables)
    added to its initramfs and colo.run=@run; returns (the finished QEMU
    process, what the guest printed on its serial port)."""
    kernel, initrd = require_linux_guest()
    qemu, env = qemu_command("10.0")
    extra = cpio_newc([(path, 0o100755, data)
                       for path, data in sorted(files.items())])
    # The kernel takes concatenated archives; later files win.
    combined = os.path.join(workdir, "initrd-%s.gz" % run)
    with open(initrd, "rb") as f, open(combined, "wb") as out:
        out.write(f.read())
        out.write(gzip.compress(extra))
    serial = os.path.join(workdir, "serial-%s.log" % run)
    argv = qemu + ["-nodefaults", "-display", "none", "-accel", "tcg",
                   "-m", str(mem_mb), "-smp", str(smp), "-kernel", kernel,
                   "-initrd", combined, "-append",
                   "console=ttyS0 panic=-1 colo.run=" + run,
                   "-serial", "file:" + serial, "-no-reboot"]
    p = subprocess.run(argv, env=env, timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with open(serial, errors="replace") as f:
        return p, f.read()


def guest_counters(serial_path):
    """The counters the colo-guest printed ("colo-guest C=XXXXXXXX") so
    far on its serial port, in order, complete lines only; [] before the
    file exists."""
    try:
        with open(serial_path, errors="replace") as f:
            return [int(line.split("C=")[1], 16)
                    for line in complete_lines(f.read()) if "C=" in line]
    except (FileNotFoundError, ValueError, IndexError):
        return []


def qemu_load_reference(version, workdir, machine, mem_mb, stream_path,
                        bios=None):
    """Loads @stream_path into a paused stock QEMU of @version and returns
    the sha256 of its RAM and its per-page contents (bytes)."""
    ref_dir = os.path.join(workdir, "reference")
    os.makedirs(ref_dir, exist_ok=True)
    q = Qemu(version, ref_dir, machine=machine, mem_mb=mem_mb, bios=bios,
             incoming="exec:cat " + stream_path, extra=["-S"])
    try:
        def done():
            st = q.qmp.cmd("query-migrate").get("status")
            if st == "failed":
                raise AssertionError("QEMU %s could not load the stream"
                                     % version)
            return st == "completed"
        wait_for(done, 120, "the reference QEMU load", 0.05)
        with open(q.ram_path, "rb") as f:
            return f.read()
    finally:
        q.quit()


def make_colo_initial_stream(workdir, version="10.0", machine="pc",
                             mem_mb=64, bios=None):
    """A real initial COLO stream: stock QEMU, stopped, with x-colo on,
    migrated to a file (QEMU 10.0.2 cannot enter COLO itself, so it simply
    completes; the stream carries ENABLE_COLO all the same)."""
    path = os.path.join(workdir, "initial-%s-%s.mig" % (version, machine))
    src_dir = os.path.join(workdir, "initial-src")
    os.makedirs(src_dir, exist_ok=True)
    q = Qemu(version, src_dir, machine=machine, mem_mb=mem_mb,
             bios=bios or HALT_BIOS)
    try:
        # Let the guest reach its resting state before it is stopped and
        # saved: halted for halt.bios, printing for the colo-guest.
        if bios in (None, HALT_BIOS):
            wait_for(lambda: "HLT=1" in q.qmp.cmd(
                "human-monitor-command", **{"command-line":
                                            "info registers"}),
                     30, "the halt guest to halt")
        else:
            wait_for(lambda: "C=" in q.serial(), 60, "the guest to run")
        q.qmp.cmd("stop")
        q.qmp.set_caps(**{"x-colo": True})
        q.qmp.cmd("migrate", uri="exec:cat > " + path)
        wait_for(lambda: q.qmp.cmd("query-migrate").get("status") ==
                 "completed", 60, "the initial stream", 0.05)
    finally:
        q.quit()
    return path
