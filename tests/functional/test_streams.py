"""Must-show 1 of part 1: every real QEMU stream in tests/data loads with
--once and every RAM block file then has the sha256 QEMU's own loader
gave (tests/data/ram-manifest.tsv)."""

import gzip
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402
import streamgen as sg  # noqa: E402


class StreamManifest(ct.TempDirTestCase):
    manifest = ct.read_manifest()

    def load(self, stream, extra=(), ram_dir=None):
        ram_dir = ram_dir or os.path.join(self.tmp, stream)
        rc, err = ct.run_once(os.path.join(ct.DATA, stream + ".mig"),
                              ram_dir, extra)
        self.assertEqual(rc, 0, "loading %s failed: %s" % (stream, err))
        return ct.ram_files(ram_dir)

    def check_plain(self, stream):
        got = self.load(stream)
        want = self.manifest[stream]
        self.assertEqual(got, want)
        dev = os.path.join(self.tmp, stream, "device-state.bin")
        self.assertTrue(os.path.getsize(dev) > 10000, "device state kept")

    def test_pc64(self):
        self.check_plain("pc64")

    def test_q35_64(self):
        self.check_plain("q35-64")

    def test_pc_i440fx_72_on_10(self):
        self.check_plain("pc-i440fx-7.2-64")

    def test_q72_pc64(self):
        self.check_plain("q72-pc64")

    def test_xbzrle(self):
        got = self.load("pc64-xbzrle")
        self.assertEqual(got["pc.ram"], self.manifest["pc64-xbzrle"]["pc.ram"])

    def test_shared_fresh_folder(self):
        # Without the backing file the shared block stays as created:
        # zero, which is what the manifest (QEMU's -x extraction) holds.
        got = self.load("pc64-shared",
                        ["-global", "migration.x-ignore-shared=on"])
        self.assertEqual(got, self.manifest["pc64-shared"])

    def test_shared_preseeded(self):
        ram_dir = os.path.join(self.tmp, "pre")
        os.makedirs(ram_dir)
        with gzip.open(os.path.join(ct.DATA, "pc64-shared.backing.gz")) as src, \
                open(os.path.join(ram_dir, "pc.ram"), "wb") as dst:
            shutil.copyfileobj(src, dst)
        backing = ct.sha256_file(os.path.join(ram_dir, "pc.ram"))
        got = self.load("pc64-shared",
                        ["-global", "migration.x-ignore-shared=on"], ram_dir)
        want = dict(self.manifest["pc64-shared"])
        want["pc.ram"] = backing      # used as is, never written
        self.assertEqual(got, want)

    def test_shared_needs_capability(self):
        rc, err = ct.run_once(os.path.join(ct.DATA, "pc64-shared.mig"),
                              os.path.join(self.tmp, "nocap"))
        self.assertEqual(rc, 1)
        self.assertIn("x-ignore-shared", err)
        self.assertIn("byte offset", err)

    def test_device_state_is_the_streams_own_bytes(self):
        self.load("pc64")
        with open(os.path.join(ct.DATA, "pc64.mig"), "rb") as f:
            stream = f.read()
        with open(os.path.join(self.tmp, "pc64", "device-state.bin"),
                  "rb") as f:
            dev = f.read()
        # The FULL sections start right after the RAM END footer at
        # 0x096562 and end with the EOF byte at 0x0997ba (spec 1.6).
        self.assertEqual(dev, stream[0x096562:0x0997bb])


class SyntheticStreams(ct.TempDirTestCase):
    """test_bad_input.py's stream builder, well-formed: accepted, and the
    RAM is what the records say."""

    def test_synthetic_stream_loads(self):
        page_a = bytes(range(256)) * 16
        page_b = bytearray(page_a)
        page_b[10:20] = b"XXXXXXXXXX"
        page_b[4000] = 0
        s = sg.Stream(machine="pc-i440fx-7.2",
                      blocks=(("pc.ram", 1 << 20), ("/rom@etc/x", 4096)))
        s.part().page("pc.ram", 0x1000, page_a)
        s.xbzrle("pc.ram", 0x1000, sg.xbzrle_encode(page_a, bytes(page_b)))
        s.compressed("pc.ram", 0x2000, sg.zlib_page(page_a))
        s.zero("pc.ram", 0x3000, fill=0x41)      # 7.2 machine: allowed
        s.page("/rom@etc/x", 0, page_a)
        s.zero("pc.ram", 0x1000)                 # CONTINUE of a new block
        s.page("pc.ram", 0xff000, page_a)
        s.end_section()
        path = os.path.join(self.tmp, "good.mig")
        with open(path, "wb") as f:
            f.write(s.finish())
        ram = os.path.join(self.tmp, "good")
        rc, err = ct.run_once(path, ram)
        self.assertEqual(rc, 0, err)
        with open(os.path.join(ram, "pc.ram"), "rb") as f:
            mem = f.read()
        self.assertEqual(len(mem), 1 << 20)
        self.assertEqual(mem[0x1000:0x2000], bytes(4096))
        self.assertEqual(mem[0x2000:0x3000], page_a)
        self.assertEqual(mem[0x3000:0x4000], b"A" * 4096)
        self.assertEqual(mem[0xff000:], page_a)
        with open(os.path.join(ram, "rom@etc", "x"), "rb") as f:
            self.assertEqual(f.read(), page_a)

    def test_xbzrle_applies_on_top(self):
        page_a = bytes(range(256)) * 16
        page_b = bytearray(page_a)
        page_b[100:110] = b"0123456789"
        s = sg.Stream()
        s.part().page("pc.ram", 0x1000, page_a)
        s.xbzrle("pc.ram", 0x1000, sg.xbzrle_encode(page_a, bytes(page_b)))
        s.end_section()
        path = os.path.join(self.tmp, "x.mig")
        with open(path, "wb") as f:
            f.write(s.finish())
        ram = os.path.join(self.tmp, "x")
        rc, err = ct.run_once(path, ram)
        self.assertEqual(rc, 0, err)
        with open(os.path.join(ram, "pc.ram"), "rb") as f:
            f.seek(0x1000)
            self.assertEqual(f.read(4096), bytes(page_b))


if __name__ == "__main__":
    ct.main()
