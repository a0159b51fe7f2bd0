"""Soft-dirty dirty tracking, proven where the kernel has it.

This host's kernel has no soft-dirty bits (CONFIG_MEM_SOFT_DIRTY is off),
Debian's own kernels have them.  So the test boots the Linux guest's
Debian cloud kernel under TCG (stock QEMU 10.0) with tests/unit/
test-soft-dirty (static: colo-primary's real dirty-scan.c) added to its
initramfs, runs it there and reads its TAP output from the serial port.
Every test must pass there; none may be skipped."""

import gzip
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402

TEST_BINARY = os.environ.get("COLO_TEST_SOFT_DIRTY", os.path.join(
    ct.BUILD_ROOT, "tests", "test-soft-dirty"))
EXPECTED_TESTS = 5

RUNNER = b"""#!/bin/sh
echo "soft-dirty-vm: kernel $(uname -r)"
/bin/test-soft-dirty --tap
echo "soft-dirty-vm: exit $?"
poweroff -f
"""


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


class SoftDirtyInGuest(ct.TempDirTestCase):

    def test_scanner_in_debian_kernel(self):
        kernel, initrd = ct.require_linux_guest()
        qemu, env = ct.qemu_command("10.0")
        with open(TEST_BINARY, "rb") as f:
            binary = f.read()
        extra = cpio_newc([("bin/test-soft-dirty", 0o100755, binary),
                           ("guest/soft-dirty", 0o100755, RUNNER)])
        # The kernel takes concatenated archives; later files win.
        combined = os.path.join(self.tmp, "initrd.gz")
        with open(initrd, "rb") as f, open(combined, "wb") as out:
            out.write(f.read())
            out.write(gzip.compress(extra))
        serial = os.path.join(self.tmp, "serial.log")
        argv = qemu + ["-nodefaults", "-display", "none", "-accel", "tcg",
                       "-m", "256", "-kernel", kernel, "-initrd", combined,
                       "-append", "console=ttyS0 panic=-1 colo.run=soft-dirty",
                       "-serial", "file:" + serial, "-no-reboot"]
        p = subprocess.run(argv, env=env, timeout=540,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with open(serial, errors="replace") as f:
            out = f.read()
        self.assertEqual(p.returncode, 0, p.stdout.decode(errors="replace"))
        self.assertIn("soft-dirty-vm: exit 0", out, out[-3000:])
        passed = re.findall(r"^ok \d+ (\S+)", out, re.M)
        failed = re.findall(r"^not ok \d+ .*", out, re.M)
        skipped = re.findall(r"^ok \d+ .*# SKIP.*", out, re.M)
        self.assertEqual(failed, [], out[-3000:])
        self.assertEqual(skipped, [], out[-3000:])
        self.assertEqual(len(passed), EXPECTED_TESTS, out[-3000:])
        kver = re.search(r"soft-dirty-vm: kernel (\S+)", out).group(1)
        notes = re.findall(r"^# fell back: .*", out, re.M)
        print("\nin the guest (kernel %s): %s passed%s" % (
            kver, ", ".join(passed), "".join("\n  " + n for n in notes)),
              file=sys.stderr)


if __name__ == "__main__":
    ct.main()
