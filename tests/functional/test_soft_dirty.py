"""Soft-dirty dirty tracking, proven where the kernel has it.

This host's kernel has no soft-dirty bits (CONFIG_MEM_SOFT_DIRTY is off),
Debian's own kernels have them.  So the test boots the Linux guest's
Debian cloud kernel under TCG (stock QEMU 10.0) with tests/unit/
test-write-tracker (static: colo-primary's real dirty-scan.c and
soft-dirty.c; only its soft-dirty cases) added to its
initramfs, runs it there and reads its TAP output from the serial port.
Every soft-dirty test must pass there; none may be skipped."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402

TEST_BINARY = os.environ.get("COLO_TEST_SOFT_DIRTY", os.path.join(
    ct.BUILD_ROOT, "tests", "test-write-tracker-static"))
EXPECTED_TESTS = 5

RUNNER = b"""#!/bin/sh
echo "soft-dirty-vm: kernel $(uname -r)"
COLO_TEST_REQUIRE_TRACKER=soft-dirty /bin/test-write-tracker --tap \\
    -p /write-tracker/soft-dirty
echo "soft-dirty-vm: exit $?"
poweroff -f
"""


class SoftDirtyInGuest(ct.TempDirTestCase):

    def test_scanner_in_debian_kernel(self):
        with open(TEST_BINARY, "rb") as f:
            binary = f.read()
        p, out = ct.run_in_linux_guest(self.tmp, {
            "bin/test-write-tracker": binary, "guest/soft-dirty": RUNNER},
            "soft-dirty", timeout=540)
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
