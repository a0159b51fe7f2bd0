"""Where the programs, guests and data the tests use are: the build tree,
overridable from the environment (meson sets them)."""

import os

SOURCE_ROOT = os.environ.get(
    "COLO_SOURCE_ROOT",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..",
                                 "..")))
BUILD_ROOT = os.environ.get("COLO_BUILD_ROOT",
                            os.path.join(SOURCE_ROOT, "build"))
SECONDARY = os.environ.get("COLO_SECONDARY",
                           os.path.join(BUILD_ROOT, "colo-secondary"))
GUEST_BIOS = os.environ.get(
    "COLO_GUEST_BIOS", os.path.join(BUILD_ROOT, "tests", "guest",
                                    "colo-guest.bios"))
HALT_BIOS = os.environ.get(
    "COLO_HALT_BIOS", os.path.join(BUILD_ROOT, "tests", "guest",
                                   "halt.bios"))
TEST_PRIMARY = os.environ.get(
    "COLO_TEST_PRIMARY", os.path.join(BUILD_ROOT, "tools",
                                      "colo-test-primary"))
DATA = os.path.join(SOURCE_ROOT, "tests", "data")
QEMU72_ROOT = os.path.join(BUILD_ROOT, "qemu-7.2")
if not os.path.isdir(QEMU72_ROOT):
    QEMU72_ROOT = os.path.join(SOURCE_ROOT, "build", "qemu-7.2")
# Exit status of a test script whose prerequisites are missing: meson
# counts it as SKIP (not as passed), and `make check` fails on any SKIP.
EXIT_SKIP = 77
LINUX_GUEST = os.environ.get("COLO_LINUX_GUEST",
                             os.path.join(BUILD_ROOT, "linux-guest"))
if not os.path.isdir(LINUX_GUEST):      # the sanitizer build shares it
    LINUX_GUEST = os.path.join(SOURCE_ROOT, "build", "linux-guest")
PRIMARY_AGENT = os.environ.get("COLO_PRIMARY", os.path.join(
    BUILD_ROOT, "tools", "colo-primary"))
NETCLIENT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "netclient.py")
