"""Part 1, bad input: every defect ends the migration as failed, with an
error naming the problem and a byte offset, exit status 1 under --once,
no crash (the suite also runs under ASan+UBSan), and no RAM file other
than the announced ones, none of them resized."""

import json
import os
import re
import socket
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402
import streamgen as sg  # noqa: E402

with open(os.path.join(ct.DATA, "pc64.mig"), "rb") as _f:
    PC64 = _f.read()

# Offsets in pc64.mig (QEMU 10.0.2, -M pc -m 64); see the spec's 1.6.
OFF_START = 0x1b            # START section, id 1, "ram"
OFF_START_IDSTR = 0x21      # "ram"
OFF_BLOCKLIST = 0x34        # 06 "pc.ram" be64 0x4000000 ...
OFF_PART = 0xc5             # PART id 1
OFF_PAGE = 0xca             # first PAGE record: be64 word, 06 "pc.ram"
OFF_DEVICES = 0x096562      # first FULL section
OFF_EOF = 0x0997ba


def patch(data, offset, new):
    return data[:offset] + new + data[offset + len(new):]


class BadInput(ct.TempDirTestCase):

    def run_bad(self, data, *phrases, ram_dir=None, extra=()):
        path = os.path.join(self.tmp, "bad.mig")
        with open(path, "wb") as f:
            f.write(data)
        ram_dir = ram_dir or os.path.join(self.tmp, "ram")
        before = self.sizes(ram_dir)
        rc, err = ct.run_once(path, ram_dir, extra)
        self.assertEqual(rc, 1, "expected failure, got %d: %s" % (rc, err))
        self.assertNotIn("AddressSanitizer", err)
        self.assertNotIn("runtime error", err)
        self.assertRegex(err, r"byte offset \d+", err)
        for p in phrases:
            self.assertIn(p, err)
        # No RAM file changes size; files only for announced blocks.
        after = self.sizes(ram_dir)
        for name, size in before.items():
            self.assertEqual(after.get(name), size, name)
        for name, size in after.items():
            self.assertIn(name, ("pc.ram", "pc.bios", "pc.rom",
                                 "rom@etc/acpi/tables",
                                 "rom@etc/table-loader",
                                 "rom@etc/acpi/rsdp"), name)
        return err

    @staticmethod
    def sizes(ram_dir):
        out = {}
        for root, _d, files in os.walk(ram_dir):
            for n in files:
                p = os.path.join(root, n)
                if n == "colo-owner.lock":
                    continue        # colo-secondary's own (ram-dir.h)
                out[os.path.relpath(p, ram_dir)] = os.path.getsize(p)
        return out

    def offset_of(self, err):
        return int(re.search(r"byte offset (\d+)", err).group(1))

    # -- truncation -----------------------------------------------------
    def test_truncated_everywhere(self):
        cuts = [0, 1, 4, 7, 8, 9, 12, 0x1a, 0x1b, 0x20, 0x2c, 0x33, 0x40,
                0xb8, 0xbf, 0xc0, 0xc4, 0xc5, 0xca, 0xd1, 0xd9, 0x500,
                0x10d8, 0x10d9, 0x10e1, 0x20000, 0x96550, OFF_DEVICES,
                OFF_DEVICES + 1, OFF_DEVICES + 0x20, 0x98000, OFF_EOF,
                OFF_EOF + 1, OFF_EOF + 3, OFF_EOF + 6, len(PC64) - 1000,
                len(PC64) - 1]
        for cut in cuts:
            with self.subTest(cut=cut):
                err = self.run_bad(PC64[:cut],
                                   ram_dir=os.path.join(self.tmp,
                                                        "t%d" % cut))
                self.assertTrue("truncated" in err or "ended" in err, err)
                self.assertLessEqual(self.offset_of(err), len(PC64))

    # -- header ----------------------------------------------------------
    def test_wrong_magic(self):
        err = self.run_bad(patch(PC64, 0, b"QEVN"), "magic")
        self.assertEqual(self.offset_of(err), 0)

    def test_wrong_version(self):
        err = self.run_bad(patch(PC64, 4, struct.pack(">I", 2)),
                           "version 2")
        self.assertEqual(self.offset_of(err), 4)

    def test_missing_configuration(self):
        self.run_bad(patch(PC64, 8, b"\x01"), "configuration")

    # -- sections ---------------------------------------------------------
    def test_unknown_section_type(self):
        err = self.run_bad(patch(PC64, OFF_PART, b"\x09"),
                           "unknown section type 0x09")
        self.assertEqual(self.offset_of(err), OFF_PART)

    def test_unknown_section_id(self):
        err = self.run_bad(patch(PC64, OFF_PART + 1, struct.pack(">I", 7)),
                           "unknown section id 7")
        self.assertEqual(self.offset_of(err), OFF_PART)

    def test_unknown_section_idstr(self):
        err = self.run_bad(patch(PC64, OFF_START_IDSTR, b"rom"),
                           "unknown live section 'rom'")
        self.assertEqual(self.offset_of(err), OFF_START)

    def test_wrong_footer(self):
        self.run_bad(patch(PC64, 0xc0 + 1, struct.pack(">I", 5)),
                     "footer names section 5")

    def test_unknown_command(self):
        # SWITCHOVER_START (cmd 11) turned into cmd 99
        off = PC64.index(b"\x08\x00\x0b\x00\x00\x03")
        err = self.run_bad(patch(PC64, off + 1, b"\x00\x63"),
                           "unknown command 0x63")
        self.assertEqual(self.offset_of(err), off)

    def test_command_bad_length(self):
        off = PC64.index(b"\x08\x00\x0b\x00\x00\x03")
        self.run_bad(patch(PC64, off + 3, b"\x00\x04"), "length 4")

    def test_ping_without_return_path(self):
        data = PC64[:0x1b] + b"\x08\x00\x02\x00\x04\x00\x00\x00\x01" + \
            PC64[0x1b:]
        self.run_bad(data, "PING", "no return path")

    def test_enable_colo_without_x_colo(self):
        data = PC64[:0x1b] + b"\x08\x00\x08\x00\x00" + PC64[0x1b:]
        self.run_bad(data, "x-colo capability is not set")

    def test_device_section_garbled(self):
        # Rename the first device section: it no longer matches the JSON.
        off = OFF_DEVICES + 6
        self.assertEqual(PC64[off:off + 5], b"timer")
        self.run_bad(patch(PC64, off, b"tomer"), "device state",
                     "could not be delimited")

    # -- RAM ----------------------------------------------------------------
    def test_unknown_ram_block(self):
        err = self.run_bad(patch(PC64, OFF_PAGE + 9, b"pc.rax"),
                           "unknown RAM block 'pc.rax'")
        self.assertEqual(self.offset_of(err), OFF_PAGE)

    def test_block_size_disagrees_with_file(self):
        ram_dir = os.path.join(self.tmp, "sized")
        os.makedirs(ram_dir)
        with open(os.path.join(ram_dir, "pc.ram"), "wb") as f:
            f.truncate(1 << 20)
        err = self.run_bad(PC64, "pc.ram", "0x4000000", "0x100000",
                           ram_dir=ram_dir)
        self.assertEqual(self.offset_of(err), OFF_BLOCKLIST)
        self.assertEqual(os.path.getsize(os.path.join(ram_dir, "pc.ram")),
                         1 << 20)

    def test_offset_outside_block(self):
        word = struct.pack(">Q", 0x4000000 | 0x008)
        err = self.run_bad(patch(PC64, OFF_PAGE, word),
                           "offset 0x4000000 is outside block 'pc.ram'")
        self.assertEqual(self.offset_of(err), OFF_PAGE)

    def test_offset_far_outside_block(self):
        word = struct.pack(">Q", 0xfffffffffffff000 | 0x008)
        self.run_bad(patch(PC64, OFF_PAGE, word), "outside block")

    def test_overlong_idstr(self):
        s = sg.Stream(blocks=(("B" * 200, 1 << 20),))
        err = self.run_bad(s.finish(), "over-long")
        self.assertEqual(self.offset_of(err), 0x2c + 8)

    def test_idstr_escaping_ram_dir(self):
        s = sg.Stream(blocks=(("/../evil", 1 << 20),))
        self.run_bad(s.finish(), "not usable as a file name")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "evil")))

    def test_idstr_naming_no_file(self):
        # "/" leaves nothing to name a file with (the RAM folder itself).
        s = sg.Stream(blocks=(("/", 1 << 20),))
        self.run_bad(s.finish(), "not usable as a file name")

    def test_idstr_naming_our_own_files(self):
        # A block may not be stored over any file or folder of the RAM
        # folder's own (include/exec/ram-dir.h), nor one being written.
        for name in ("colo-checkpoint", "colo-journal", "colo-cache",
                     "/colo-cache/pc.ram", "colo-disk-cache",
                     "colo-disk-cache/disk0", "device-state.bin",
                     "vmdesc.json", "failover-qemu.qmp",
                     "failover-qemu.log", "colo-journal.tmp",
                     "vmdesc.json.tmp", "colo-owner.lock"):
            with self.subTest(name=name):
                s = sg.Stream(blocks=((name, 1 << 20),))
                self.run_bad(s.finish(), "would overwrite colo-secondary's "
                             "own file")

    def test_mem_size_overrun(self):
        # Block list whose entry is larger than the announced total.
        data = bytearray(sg.Stream(blocks=(("pc.ram", 1 << 20),)).finish())
        off = data.index(b"\x06pc.ram") + 7
        data[off:off + 8] = struct.pack(">Q", 2 << 20)
        self.run_bad(bytes(data), "overruns the announced total")

    def test_continue_without_block(self):
        s = sg.Stream()
        s.part()
        s.b += sg.be64(0x1000 | sg.ZERO | sg.CONTINUE) + b"\x00"
        s.end_section()
        self.run_bad(s.finish(), "CONTINUE flag before any block")

    def test_unknown_flag_combination(self):
        s = sg.Stream()
        s.part()
        s.b += sg.be64(sg.PAGE_F | sg.EOS) + sg.str8("pc.ram") + \
            bytes(4096)
        s.end_section()
        self.run_bad(s.finish(), "unknown combination of flags 0x018")

    def test_xbzrle_malformed(self):
        cases = {
            "encoding byte 0x02": dict(encoded=b"\x00\x01\xaa", enc_byte=2),
            "larger than a page": dict(encoded=b"", length=4097),
            "empty changed run": dict(encoded=b"\x05\x00\x01"),
            "past the end of the page": dict(encoded=b"\xff\x1f\x02\x01\x02"),
            "past the end of the record": dict(encoded=b"\x00\x05\x01\x02"),
            "empty unchanged run": dict(encoded=b"\x00\x01\xaa\x00\x01\xbb"),
            "malformed": dict(encoded=b"\x80\x80\x01\x01\x01"),
        }
        for phrase, kw in cases.items():
            with self.subTest(phrase=phrase):
                s = sg.Stream()
                s.part().page("pc.ram", 0x3000, bytes([7]) * 4096)
                s.xbzrle("pc.ram", 0x3000, **kw).end_section()
                data = s.finish()
                if "length" in kw:      # the payload is cut short on purpose
                    data = data[:-1]
                err = self.run_bad(data, "XBZRLE",
                                   ram_dir=os.path.join(self.tmp, phrase))
                if "length" not in kw:
                    self.assertIn(phrase, err)

    def test_zlib_malformed(self):
        good = sg.zlib_page(bytes(range(256)) * 16)
        cases = {
            "corrupt": good[:10] + b"\xff" * 8 + good[18:],
            "less than a page": sg.zlib_page(b"x" * 100),
            "trailing bytes": good + b"\x00\x01",
            "cut short": good[:-6],
        }
        for phrase, payload in cases.items():
            with self.subTest(phrase=phrase):
                s = sg.Stream()
                s.part().compressed("pc.ram", 0x5000, payload).end_section()
                err = self.run_bad(s.finish(), "compressed page",
                                   ram_dir=os.path.join(self.tmp, phrase))
                self.assertIn(phrase, err)
        s = sg.Stream()
        s.part()
        s.b += sg.be64(0x5000 | sg.COMPRESS) + sg.str8("pc.ram") + \
            sg.be32(100000)
        self.run_bad(s.finish(), "length 100000")

    def test_zero_page_nonzero_fill_on_10_stream(self):
        s = sg.Stream(machine="pc-i440fx-10.0")
        s.part().zero("pc.ram", 0x2000, fill=0x41).end_section()
        err = self.run_bad(s.finish(), "fill byte 0x41")
        self.assertEqual(self.offset_of(err), 85)

    def test_fuzz_colo_bcb86a39_truncated_vmdescription(self):
        # Found by fuzz-colo (tests/fuzz/regressions): a 0x06 right after
        # EOF starts a VMDESCRIPTION whose JSON never arrives.  The load
        # fails, naming it, instead of waiting or reading past the end.
        s = sg.Stream()
        s.part().page("pc.ram", 0, bytes(4096)).end_section()
        data = s.finish() + bytes.fromhex("0600003a400000")
        err = self.run_bad(data, "truncated")
        self.assertEqual(self.offset_of(err), len(data) - 2)

    # -- JSON from the peer: nesting is bounded before any parser --------
    def deep_vmdescription(self, json):
        """pc64.mig with its VMDESCRIPTION replaced by @json."""
        self.assertEqual(PC64[OFF_EOF:OFF_EOF + 2], b"\x00\x06")
        return PC64[:OFF_EOF + 1] + b"\x06" + struct.pack(">I", len(json)) \
            + json

    def test_vmdescription_nested_100000_objects(self):
        # Once a SIGSEGV (stack overflow in the recursive JSON parser).
        n = 100000
        json = b'{"devices":' + b'{"a":' * n + b"1" + b"}" * (n + 1)
        self.run_bad(self.deep_vmdescription(json), "could not be delimited",
                     "JSON nested deeper than 1024 levels")

    def test_vmdescription_nested_100000_arrays(self):
        n = 100000
        json = b'{"devices":' + b"[" * n + b"]" * n + b"}"
        self.run_bad(self.deep_vmdescription(json), "could not be delimited",
                     "JSON nested deeper than 1024 levels")

    def test_vmdescription_nested_1024_is_parsed(self):
        # QEMU's own limit: 1024 levels are JSON like any other (this one
        # then fails as a description, not as JSON).
        json = b'{"devices":' + b"[" * 1023 + b"]" * 1023 + b"}"
        err = self.run_bad(self.deep_vmdescription(json),
                           "could not be delimited")
        self.assertNotIn("nested deeper", err)

    def test_many_vmdescription_candidates(self):
        # 2,000 fake VMDESCRIPTION headers 4 KiB apart, each claiming all
        # the bytes up to the end of the stream: every one is tried, and
        # the work stays linear in the stream (each try stops at the next
        # header's NUL), not 2,000 x 8 MiB of scanning: the suite's
        # timeout, not a timed assertion, catches a quadratic search.
        body = bytearray()
        n, gap = 2000, 4096
        total = n * gap
        for i in range(n):
            rest = total - i * gap - 6
            chunk = b"\x00\x06" + struct.pack(">I", rest) + b'{"a":"'
            body += chunk + b"x" * (gap - len(chunk))
        self.run_bad(PC64[:OFF_EOF] + bytes(body), "could not be delimited")


class DeepQmpRequest(ct.TempDirTestCase):
    """A QMP line of 100,000 '[' once killed the daemon (stack overflow in
    the JSON parser).  Now it is an error reply naming the limit, and the
    daemon goes on serving that client and the others."""

    def test_nested_request(self):
        sec = ct.Secondary(self.tmp)
        try:
            bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            bad.connect(sec.qmp_path)
            bad.settimeout(30)
            f = bad.makefile("rb")
            self.assertIn(b"QMP", f.readline())
            bad.sendall(b'{"execute": "qmp_capabilities"}\n')
            self.assertIn(b"return", f.readline())
            for deep in (b"[" * 100000, b'{"a":' * 100000):
                bad.sendall(deep + b"\n")
                reply = json.loads(f.readline())
                self.assertIn("nested deeper than 1024 levels",
                              reply["error"]["desc"])
            bad.sendall(b'{"execute": "query-status", "id": 7}\n')
            reply = json.loads(f.readline())
            self.assertEqual(reply["id"], 7)
            self.assertEqual(reply["return"]["status"], "inmigrate")
            self.assertEqual(sec.qmp.cmd("query-status")["status"],
                             "inmigrate")
            f.close()
            bad.close()
        finally:
            self.assertEqual(sec.quit(), 0, sec.stderr())


class LongQmpLine(ct.TempDirTestCase):
    """A QMP line over 1 MiB (with or without its newline) gets an error
    reply, then the connection closes; the server never holds more than
    that of it, and the other clients stay served."""

    def test_long_line(self):
        sec = ct.Secondary(self.tmp)
        try:
            for tail in (b"\n", b""):
                bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                bad.connect(sec.qmp_path)
                bad.settimeout(30)
                f = bad.makefile("rb")
                self.assertIn(b"QMP", f.readline())
                line = b'{"execute": "query-status", "id": "' + \
                    b"x" * (2 << 20) + b'"}' + tail
                try:
                    bad.sendall(line)
                except (BrokenPipeError, ConnectionResetError):
                    pass        # closed while we still wrote: fine
                reply = json.loads(f.readline())
                self.assertIn("longer than 1048576 bytes",
                              reply["error"]["desc"])
                try:        # then closed (reset: our bytes were unread)
                    self.assertEqual(f.readline(), b"")
                except ConnectionResetError:
                    pass
                f.close()
                bad.close()
                self.assertEqual(sec.qmp.cmd("query-status")["status"],
                                 "inmigrate")
        finally:
            self.assertEqual(sec.quit(), 0, sec.stderr())


class BadQmpClient(ct.TempDirTestCase):
    """A QMP client that sends requests but never reads its replies must
    not stall the server: other clients stay served, and the silent one is
    cut off once 8 MiB of output pile up for it."""

    def test_client_that_does_not_read(self):
        sec = ct.Secondary(self.tmp)
        try:
            bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            bad.connect(sec.qmp_path)
            bad.recv(4096)                          # the greeting
            bad.sendall(b'{"execute": "qmp_capabilities"}\n')
            flood = b'{"execute": "query-version"}\n' * 1000
            cut_off = []

            def send_forever():
                try:
                    for _ in range(200):            # ~6 MiB of requests
                        bad.sendall(flood)
                except OSError:
                    cut_off.append(True)
            t = threading.Thread(target=send_forever, daemon=True)
            t.start()
            for _ in range(20):
                self.assertEqual(sec.qmp.cmd("query-status")["status"],
                                 "inmigrate")
            t.join(60)
            self.assertFalse(t.is_alive())
            # cut off: reading drains what was queued, then EOF
            bad.settimeout(30)
            got = 0
            closed = False
            while True:
                try:
                    data = bad.recv(1 << 20)
                except ConnectionResetError:
                    closed = True
                    break
                if not data:
                    closed = True
                    break
                got += len(data)
            # the server closed the connection (a 30 s timeout raises)
            self.assertTrue(closed)
            # it held at most its 8 MiB of unread output (plus what the
            # kernel buffers), never the ~26 MB all the replies would make
            self.assertLess(got, 12 << 20)
            self.assertEqual(sec.qmp.cmd("query-status")["status"],
                             "inmigrate")
            self.assertIn("left", sec.stderr())
        finally:
            bad.close()
            sec.quit()


if __name__ == "__main__":
    ct.main()
