"""TLS on the migration channel, QEMU-compatible: tls-creds-x509 objects
with QEMU's file layout, migrate-set-parameters tls-creds / tls-hostname /
tls-authz, certificates made here with openssl (colotest.make_tls_certs).

- stock QEMU 10.0 migrates into colo-secondary over TLS (the server
  checks the client's certificate and its DN against authz-simple); the
  RAM file equals the source's;
- a plain source, a client certificate from another CA, an expired one,
  and a CN the authz does not allow are refused with a clear error, and
  nothing is loaded from them;
- colo-primary protects a VM into colo-secondary over TLS through 20
  checkpoints (each verified against the VM's RAM) and a failover;
- colo-primary and colo-test-primary checkpoint into the stock QEMU 10.0
  COLO secondary over TLS."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402
from test_failover import check_guest_runs_on, guest_pages_ok  # noqa: E402

CHECKPOINTS = 20


def tls_object(name, d, server):
    return "tls-creds-x509,id=%s,dir=%s,endpoint=%s,verify-peer=on" % (
        name, d, "server" if server else "client")


def client_tls_args(client_dir):
    """colo-primary's / colo-test-primary's options for TLS with the client
    credentials in @client_dir to a server certified for localhost."""
    return ["--object", tls_object("tls0", client_dir, False),
            "--tls-creds", "tls0", "--tls-hostname", "localhost"]


class Tls(ct.TempDirTestCase):

    @classmethod
    def setUpClass(cls):
        cls.certs_root = os.path.join("/dev/shm", "colo-tls-%d" % os.getpid())
        os.makedirs(cls.certs_root, exist_ok=True)
        cls.certs = ct.make_tls_certs(cls.certs_root)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["rm", "-rf", cls.certs_root])

    def tls_secondary(self, workdir, authz="CN=client", extra=(), colo=False):
        """colo-secondary listening with TLS (server credentials, clients
        verified, @authz allowed); returns (Secondary, port)."""
        args = ["-object", tls_object("tls0", self.certs["server"], True),
                "-object", "authz-simple,id=auth0,identity=%s" % authz]
        sec = ct.Secondary(workdir, extra=args + list(extra))
        if colo:
            sec.qmp.set_caps(**{"x-colo": True, "events": True})
        else:
            sec.qmp.set_caps(events=True)
        sec.qmp.cmd("migrate-set-parameters", **{"tls-creds": "tls0",
                                                 "tls-authz": "auth0"})
        self.assertEqual(sec.qmp.cmd("query-migrate-parameters")[
            "tls-creds"], "tls0")
        sec.qmp.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
        port = sec.qmp.cmd("query-migrate")["socket-address"][0]["port"]
        return sec, int(port)

    def qemu_source(self, workdir, client_dir=None):
        """Stock QEMU 10.0 running the halt guest, with TLS client
        credentials from @client_dir (None: plain)."""
        extra = []
        if client_dir:
            extra = ["-object", tls_object("tls0", client_dir, False)]
        q = ct.Qemu("10.0", workdir, mem_mb=64, bios=ct.HALT_BIOS,
                    extra=extra)
        ct.wait_for(lambda: "HLT=1" in q.qmp.cmd(
            "human-monitor-command", **{"command-line": "info registers"}),
            30, "the halt guest to halt")
        if client_dir:
            q.qmp.cmd("migrate-set-parameters", **{
                "tls-creds": "tls0", "tls-hostname": "localhost"})
        return q

    def migrate(self, src, sec, port):
        """Runs the migration; returns (source status, our query-migrate)."""
        src.qmp.cmd("migrate", uri="tcp:127.0.0.1:%d" % port)
        ct.wait_for(lambda: src.qmp.cmd("query-migrate").get("status") in
                    ("completed", "failed"), 60, "the source to finish")
        ct.wait_for(lambda: sec.qmp.cmd("query-migrate").get("status") in
                    ("completed", "failed"), 60, "colo-secondary to finish")
        return (src.qmp.cmd("query-migrate")["status"],
                sec.qmp.cmd("query-migrate"))

    def test_qemu_to_secondary_over_tls(self):
        ct.require_qemu("10.0")
        sec, port = self.tls_secondary(os.path.join(self.tmp))
        src = self.qemu_source(os.path.join(self.tmp), self.certs["client"])
        try:
            src.qmp.cmd("stop")
            st, info = self.migrate(src, sec, port)
            self.assertEqual((st, info["status"]), ("completed", "completed"),
                             info)
            self.assertEqual(ct.sha256_file(src.ram_path), ct.sha256_file(
                os.path.join(sec.ram_dir, "pc.ram")))
        finally:
            src.quit()
            self.assertEqual(sec.quit(), 0)

    def refused(self, make_source, want):
        """A source that must be refused: its connection is counted with
        @want as the reason, nothing is loaded, and the port stays open
        for the real source (the migration does not fail)."""
        sec, port = self.tls_secondary(self.tmp)
        try:
            make_source(port)
            ct.wait_for(lambda: sec.qmp.cmd("query-migrate").get(
                "x-refused-connections"), 60, "colo-secondary to refuse")
            info = sec.qmp.cmd("query-migrate")
            self.assertIn(want, info.get("x-last-refusal", ""), info)
            self.assertEqual(info["status"], "setup", info)
            self.assertNotIn("ram", info)
            self.assertEqual(ct.ram_files(sec.ram_dir), {})
            self.assertIn("incoming migration from 127.0.0.1:", sec.stderr())
        finally:
            self.assertEqual(sec.quit(), 0)
        return info["x-last-refusal"]

    def qemu_refused(self, client_dir, want, what):
        ct.require_qemu("10.0")
        src = self.qemu_source(self.tmp, client_dir)
        try:
            err = self.refused(lambda port: src.qmp.cmd(
                "migrate", uri="tcp:127.0.0.1:%d" % port), want)
            print("\n%s: %s" % (what, err), file=sys.stderr)
        finally:
            src.quit()

    def test_plain_source_refused(self):
        self.qemu_refused(None, "TLS handshake with the source on "
                          "tcp:127.0.0.1:", "plain source")

    def test_cn_not_allowed_refused(self):
        self.qemu_refused(self.certs["intruder"], "TLS peer 'CN=intruder' "
                          "is not allowed by authz-simple auth0", "wrong CN")

    def primary_to(self, port, client_dir, extra=()):
        """colo-test-primary's initial stream over TLS, as a source."""
        initial = ct.make_colo_initial_stream(self.tmp)
        return subprocess.run(
            [ct.TEST_PRIMARY, "--initial", initial,
             *client_tls_args(client_dir),
             "--connect", "tcp:127.0.0.1:%d" % port, "--checkpoints", "1"]
            + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=120)

    def test_other_ca_refused(self):
        ct.require_qemu("10.0")
        # GnuTLS does not even offer a certificate the server's CA list
        # does not name; one offered anyway would be refused as unknown
        err = self.refused(lambda port: self.primary_to(
            port, self.certs["otherca"]), "TLS")
        self.assertTrue("no certificate that this server's CAs accept" in err
                        or "issuer is unknown" in err, err)
        print("\nanother CA: %s" % err, file=sys.stderr)

    def test_expired_refused(self):
        ct.require_qemu("10.0")
        err = self.refused(lambda port: self.primary_to(
            port, self.certs["expired"]), "certificate is refused")
        self.assertIn("expired", err)
        print("\nexpired: %s" % err, file=sys.stderr)

    def test_slow_handshakes(self):
        """16 connections trickle a TLS ClientHello into the migration port:
        each is cut at the handshake deadline (10 s, docs/threat-model.rst)
        and the real source is served within it."""
        ct.require_qemu("10.0")
        sec, port = self.tls_secondary(self.tmp, colo=True)
        stop = threading.Event()

        def trickle():
            hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
            try:
                with socket.create_connection(("127.0.0.1", port)) as s:
                    for b in hello:
                        if stop.wait(2.0):
                            return
                        s.sendall(bytes([b]))
                    stop.wait()
            except OSError:
                pass
        try:
            for _ in range(16):
                threading.Thread(target=trickle, daemon=True).start()
            time.sleep(1)
            t0 = time.monotonic()
            r = self.primary_to(port, self.certs["client"])
            took = time.monotonic() - t0
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            info = sec.qmp.cmd("query-migrate")
            print("\nTLS: real source served after %.1f s beside 16 slow "
                  "handshakes (%d refused: %s)" % (
                      took, info.get("x-refused-connections", 0),
                      info.get("x-last-refusal")), file=sys.stderr)
            self.assertLess(took, 25)
            # those that failed before the real one won are counted
            self.assertGreaterEqual(info.get("x-refused-connections", 0), 1,
                                    info)
            self.assertIn("not finished within the deadline",
                          info["x-last-refusal"])
        finally:
            stop.set()
            self.assertEqual(sec.quit(), 0)

    def test_colo_primary_over_tls_and_failover(self):
        """colo-primary -> colo-secondary over TLS: 20 checkpoints, each
        compared with the VM's RAM at its pause (--verify-secondary), then
        the primary QEMU is killed and the VM fails over."""
        ct.require_qemu("10.0")
        vm = ct.Qemu("10.0", self.tmp, machine="pc", mem_mb=64,
                     bios=ct.GUEST_BIOS)
        serial = os.path.join(self.tmp, "resumed.log")
        args = ("-nodefaults -display none -accel tcg -bios %s -serial file:%s"
                " -S" % (ct.GUEST_BIOS, serial))
        sdir = os.path.join(self.tmp, "sec")
        os.makedirs(sdir)
        sec, port = self.tls_secondary(sdir, colo=True, extra=[
            "-failover-args", args, "-heartbeat-timeout", "1000",
            "-failover-qemu", ct.qemu_binary()])
        agent = None
        pid = None
        q = None
        try:
            ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
            vm.qmp.close()
            agent = subprocess.Popen(
                [ct.PRIMARY_AGENT, "--qmp", vm.qmp_path, "--ram-file",
                 vm.ram_path, *client_tls_args(self.certs["client"]),
                 "--connect", "tcp:127.0.0.1:%d" % port,
                 "--x-checkpoint-delay", "100", "--verify-secondary",
                 sec.ram_dir], stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT)
            ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")[
                "x-checkpoints"] >= CHECKPOINTS or agent.poll() is not None,
                120, "%d checkpoints" % CHECKPOINTS)
            if agent.poll() is not None:
                self.fail("colo-primary ended: " + agent.stdout.read().decode())
            vm.proc.send_signal(signal.SIGKILL)
            ev = sec.qmp.wait_event("X_COLO_FAILOVER", 60)
            self.assertNotIn("error", ev["data"], ev)
            pid = ev["data"]["pid"]
            out = agent.communicate(timeout=30)[0].decode()
            verified = out.count("secondary verified")
            self.assertGreaterEqual(verified, CHECKPOINTS, out)
            # the failover QEMU waits (-S) on the committed state
            self.assertFalse(ev["data"]["running"])
            with open(os.path.join(sec.ram_dir, "pc.ram"), "rb") as f:
                ok, committed = guest_pages_ok(f.read())
            self.assertTrue(ok)
            q = ct.QMP(ev["data"]["qmp"])
            q.cmd("cont")
            first, _ = check_guest_runs_on(self, serial, sec.ram_dir,
                                           committed, 0x10001, q)
            print("\ncolo-primary over TLS: %d checkpoints verified, failover "
                  "resumed at C=%x (committed C=%x)" % (verified, first,
                                                         committed),
                  file=sys.stderr)
        finally:
            if q:
                q.close()
            if agent and agent.poll() is None:
                agent.kill()
                agent.wait()
            ct.kill_pid(pid)
            vm.kill()
            sec.quit()

    def stock_tls_secondary(self):
        """The stock QEMU 10.0 COLO secondary (halt guest) listening with
        TLS, clients verified, CN=client allowed; returns (Qemu, port)."""
        qdir = os.path.join(self.tmp, "qemu-secondary")
        os.makedirs(qdir)
        qemu = ct.Qemu("10.0", qdir, machine="pc", mem_mb=64,
                       bios=ct.HALT_BIOS, incoming="defer", extra=[
                           "-object", tls_object("tls0", self.certs["server"],
                                                 True),
                           "-object", "authz-simple,id=auth0,"
                                      "identity=CN=client"])
        qemu.qmp.set_caps(**{"x-colo": True, "events": True})
        qemu.qmp.cmd("migrate-set-parameters", **{"tls-creds": "tls0",
                                                  "tls-authz": "auth0"})
        qemu.qmp.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
        return qemu, qemu.qmp.cmd("query-migrate")["socket-address"][0]["port"]

    def test_to_stock_qemu_colo_secondary_over_tls(self):
        """Our COLO primary side into the stock QEMU 10.0 COLO secondary,
        which requires TLS with a client certificate."""
        ct.require_qemu("10.0")
        initial = ct.make_colo_initial_stream(self.tmp)
        qemu, qport = self.stock_tls_secondary()
        try:
            p = subprocess.run(
                [ct.TEST_PRIMARY, "--initial", initial,
                 *client_tls_args(self.certs["client"]),
                 "--connect", "tcp:127.0.0.1:%s" % qport,
                 "--checkpoints", str(CHECKPOINTS), "--pages", "64",
                 "--seed", "3"], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, timeout=300)
            out = p.stdout.decode()
            self.assertEqual(p.returncode, 0, p.stderr.decode() + out +
                             qemu.stderr())
            self.assertEqual(out.count("checkpoint "), CHECKPOINTS, out)
            self.assertEqual(qemu.qmp.cmd("query-colo-status")["mode"],
                             "secondary")
        finally:
            qemu.qmp.close()
            qemu.kill()

    def test_colo_primary_to_stock_qemu_secondary_over_tls(self):
        """colo-primary protects a VM into the stock QEMU 10.0 COLO
        secondary over TLS: 20 checkpoints accepted, and the stock
        secondary's RAM equals the VM's (the halt guest: neither VM
        writes RAM of its own)."""
        ct.require_qemu("10.0")
        vm = ct.Qemu("10.0", self.tmp, machine="pc", mem_mb=64,
                     bios=ct.HALT_BIOS)
        qemu, qport = self.stock_tls_secondary()
        try:
            vm.qmp.close()
            p = subprocess.run(
                [ct.PRIMARY_AGENT, "--qmp", vm.qmp_path, "--ram-file",
                 vm.ram_path, *client_tls_args(self.certs["client"]),
                 "--connect", "tcp:127.0.0.1:%s" % qport,
                 "--checkpoints", str(CHECKPOINTS),
                 "--x-checkpoint-delay", "100"], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, timeout=300)
            out = p.stdout.decode()
            self.assertEqual(p.returncode, 0, p.stderr.decode() + out +
                             qemu.stderr())
            self.assertIn("done: %d checkpoints" % CHECKPOINTS, out)
            self.assertEqual(qemu.qmp.cmd("query-colo-status")["mode"],
                             "secondary")
            self.assertEqual(ct.sha256_file(vm.ram_path),
                             ct.sha256_file(qemu.ram_path))
        finally:
            qemu.qmp.close()
            qemu.kill()
            vm.kill()

    def test_bad_tls_objects(self):
        """Credentials that cannot work are refused when they are given,
        with the reason."""
        def secondary(*args):
            return subprocess.run([ct.SECONDARY, "--once", "-incoming",
                                   "defer"] + list(args),
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=30)

        p = secondary("-object", "tls-creds-x509,id=t,dir=/nonexistent,"
                      "endpoint=server")
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent/ca-cert.pem is missing", p.stderr.decode())
        p = secondary("-object", "tls-creds-x509,id=t,dir=%s,endpoint=up"
                      % self.certs["server"])
        self.assertIn("Parameter 'endpoint' does not accept value 'up'",
                      p.stderr.decode())
        p = secondary("-object", "tls-creds-x509,id=t,dir=%s,colour=red"
                      % self.certs["server"])
        self.assertIn("Property 'colour' not found", p.stderr.decode())
        p = secondary("-object", "secret,id=s,data=x")
        self.assertIn("type 'secret' is not known here", p.stderr.decode())
        # a client's credentials cannot serve an incoming migration, and
        # an unknown id is named
        sec = ct.Secondary(self.tmp, extra=[
            "-object", tls_object("c", self.certs["client"], False)])
        try:
            for creds, want in (("c", "endpoint=server"),
                                ("nope", "No TLS credentials with id "
                                         "'nope'")):
                sec.qmp.cmd("migrate-set-parameters", **{"tls-creds": creds})
                r = sec.qmp.cmd_raw("migrate-incoming",
                                    uri="tcp:127.0.0.1:0")
                self.assertIn(want, r["error"]["desc"])
            r = sec.qmp.cmd_raw("migrate-set-parameters",
                                **{"tls-creds": "a b"})
            self.assertIn("may only hold", r["error"]["desc"])
        finally:
            self.assertEqual(sec.quit(), 0)


if __name__ == "__main__":
    ct.main()
