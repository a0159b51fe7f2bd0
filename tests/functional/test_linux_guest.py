"""The real Linux guest (scripts/build-guest.sh: Debian's cloud kernel and
a busybox initramfs) boots in stock QEMU 10.0 under TCG with a virtio NIC
and a virtio disk, loads the virtio drivers and runs its workload.  The
guest the network, disk and cluster work builds on: this test says it is
there and sane before anything relies on it."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402


def ticks(serial):
    """[(sequence number, uptime)] the ticker workload printed."""
    out = []
    for line in ct.complete_lines(serial):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "tick":
            out.append((int(parts[1]), float(parts[2])))
    return out


class LinuxGuest(ct.TempDirTestCase):

    def test_boots_with_virtio_and_runs_its_workload(self):
        kernel, initrd = ct.require_linux_guest()
        ct.require_qemu("10.0")
        disk = os.path.join(self.tmp, "disk.raw")
        with open(disk, "wb") as f:
            f.truncate(16 << 20)
        q = ct.Qemu("10.0", self.tmp, mem_mb=256, extra=[
            "-kernel", kernel, "-initrd", initrd,
            "-append", "console=ttyS0 quiet colo.run=ticker",
            # a NIC on a hub with no other port: its frames go nowhere
            "-netdev", "hubport,id=n0,hubid=0",
            "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:c0:10:01",
            "-drive", "if=none,id=d0,file=%s,format=raw" % disk,
            "-device", "virtio-blk-pci,drive=d0"])
        try:
            ct.wait_for(lambda: len(ticks(q.serial())) >= 3, 120,
                        "the guest's ticker")
            serial = q.serial()
            self.assertIn("colo-guest: up after", serial)
            self.assertIn("2 virtio devices, run=ticker", serial)
            self.assertNotIn("insmod", serial)     # no driver failed
            t = ticks(serial)
            self.assertEqual([n for n, _ in t], list(range(1, len(t) + 1)))
            self.assertEqual(sorted(u for _, u in t), [u for _, u in t])
            print("\n" + serial.splitlines()[0], file=sys.stderr)
        finally:
            q.quit()


    def test_service_reached_through_a_tap(self):
        """The guest's TCP service, reached by a client in the test's own
        network namespace through a tap on a bridge: every line depends
        on time, in order."""
        kernel, initrd = ct.require_linux_guest()
        ct.require_qemu("10.0")
        ct.require_netns()
        ns = ct.NetNs("guest")
        q = None
        try:
            tap = ns.add_tap("tap0")
            q = ct.Qemu("10.0", self.tmp, mem_mb=256, prefix=ns.prefix(),
                        extra=[
                "-kernel", kernel, "-initrd", initrd,
                "-append", "console=ttyS0 quiet colo.run=service "
                           "colo.ip=10.77.0.10/24",
                "-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no"
                           % tap,
                "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:c0:10:02"])
            ct.wait_for(lambda: "serving on port 7777" in q.serial(), 120,
                        "the guest's service")
            client = subprocess.run(
                ns.prefix() + [sys.executable,
                               os.path.join(os.path.dirname(__file__),
                                            "netclient.py"),
                               "10.77.0.10", "7777", "3"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            out = client.stdout.decode().splitlines()
            self.assertEqual(client.returncode, 0, client.stderr.decode())
            self.assertEqual(out[-1], "netclient: done")
            lines = [x.split() for x in out[:-1]]
            self.assertGreater(len(lines), 5)
            self.assertEqual([int(x[1]) for x in lines],
                             list(range(1, len(lines) + 1)))
            uptimes = [float(x[2]) for x in lines]
            self.assertEqual(sorted(uptimes), uptimes)
            self.assertGreater(uptimes[-1], uptimes[0])
        finally:
            if q:
                q.quit()
            ns.close()


if __name__ == "__main__":
    ct.main()
