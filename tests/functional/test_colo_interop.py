"""Part 2, must-show 3: our test primary drives the stock QEMU 10.0.2 COLO
secondary and colo-secondary through the same checkpoints (XBZRLE, zero
pages, several blocks, CONTINUE across checkpoints, empty RAM parts); the
stock secondary accepts every one (VMSTATE_LOADED) and its guest RAM, in a
shared memory-backend-file, equals ours, and the test primary's model,
after the last one.  The guest is a halted -bios image, so the stock
secondary's running SVM never writes RAM of its own."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402

CHECKPOINTS = 25


class ColoInterop(ct.TempDirTestCase):

    def run_session(self, xbzrle):
        ct.require_qemu("10.0")
        initial = ct.make_colo_initial_stream(self.tmp)
        qdir = os.path.join(self.tmp, "qemu-secondary")
        os.makedirs(qdir)
        qemu = ct.Qemu("10.0", qdir, machine="pc", mem_mb=64,
                       bios=ct.HALT_BIOS, incoming="defer")
        ours = ct.ColoSecondary(self.tmp)
        model = os.path.join(self.tmp, "model")
        try:
            qemu.qmp.set_caps(**{"x-colo": True, "events": True})
            qemu.qmp.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
            qport = qemu.qmp.cmd("query-migrate")["socket-address"][0]["port"]
            argv = [ct.TEST_PRIMARY, "--initial", initial,
                    "--connect", "tcp:127.0.0.1:%s" % qport,
                    "--connect", "tcp:127.0.0.1:%d" % ours.port,
                    "--checkpoints", str(CHECKPOINTS), "--pages", "96",
                    "--seed", "7", "--ram-dir", model]
            if xbzrle:
                argv.append("--xbzrle")
            p = subprocess.run(argv, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=300)
            out = p.stdout.decode()
            self.assertEqual(p.returncode, 0, p.stderr.decode() + out +
                             qemu.stderr())
            # Every checkpoint was acknowledged by both with VMSTATE_LOADED.
            self.assertEqual(out.count("checkpoint "), CHECKPOINTS, out)
            if xbzrle:
                self.assertNotIn(" 0 xbzrle", out)
            self.assertEqual(qemu.qmp.cmd("query-colo-status")["mode"],
                             "secondary")
            self.assertEqual(
                ours.qmp.cmd("query-colo-status")["x-checkpoints"],
                CHECKPOINTS)
            with open(qemu.ram_path, "rb") as f:
                theirs = f.read()
            with open(os.path.join(ours.ram_dir, "pc.ram"), "rb") as f:
                mine = f.read()
            with open(os.path.join(model, "pc.ram"), "rb") as f:
                want = f.read()
            self.assertTrue(mine == want, "ours differs from the model")
            diff = [hex(i) for i in range(0, len(mine), 4096)
                    if mine[i:i + 4096] != theirs[i:i + 4096]]
            self.assertEqual(diff, [], "ours differs from stock QEMU's")
            for name in ("pc.bios", "pc.rom", "rom@etc/acpi/tables"):
                self.assertEqual(
                    ct.sha256_file(os.path.join(ours.ram_dir, name)),
                    ct.sha256_file(os.path.join(model, name)), name)
        finally:
            qemu.quit()
            self.assertEqual(ours.quit(), 0, ours.stderr())

    def test_qemu100_secondary_xbzrle(self):
        self.run_session(xbzrle=True)

    def test_qemu100_secondary_plain(self):
        self.run_session(xbzrle=False)


if __name__ == "__main__":
    ct.main()
