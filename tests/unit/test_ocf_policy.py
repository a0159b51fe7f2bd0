#!/usr/bin/python3
"""The OCF agent's decisions (tools/ocf/colo_ocf/policy.py), without a
cluster: when the VM may boot, how a node is promoted, what an unpromoted
standby is, when a session is over, and when output held for a lost
standby may go out.  Then the same decisions as the agent acts on them
(settle_lost, action_promote, monitor of the standby) with the cluster's
commands replaced by stand-ins, and the QMP client against a socket
server of its own.  The oracle is the rule written in docs/cluster.rst,
case by case."""

import atexit
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import unittest
from unittest import mock

ROOT = os.environ.get("COLO_SOURCE_ROOT", os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..")))
sys.path.insert(0, os.path.join(ROOT, "tools", "ocf"))

RUN = tempfile.mkdtemp(prefix="ocf-policy-")
atexit.register(shutil.rmtree, RUN, ignore_errors=True)
os.environ["COLO_OCF_RUN_DIR"] = RUN
os.environ["OCF_RESKEY_state_dir"] = RUN
os.environ.pop("OCF_RESKEY_CRM_meta_clone_max", None)

from colo_ocf import actions, ocf, policy, protect, qmp, standby  # noqa: E402


class BootAllowed(unittest.TestCase):
    def test_own_disks_are_newest(self):
        self.assertEqual(policy.boot_allowed("n1", "n1", "n2", "n2"),
                         (True, ""))

    def test_other_node_ran_it_last(self):
        ok, why = policy.boot_allowed("n1", "n2", None, "")
        self.assertFalse(ok)
        self.assertIn("n2", why)

    def test_a_standby_exists(self):
        ok, why = policy.boot_allowed("n1", None, "n2", "")
        self.assertFalse(ok)
        self.assertIn("standby", why)

    def test_first_boot(self):
        self.assertTrue(policy.boot_allowed("n1", None, None, "")[0])
        self.assertTrue(policy.boot_allowed("n1", None, None, "n1")[0])
        self.assertFalse(policy.boot_allowed("n2", None, None, "n1")[0])


class Promotion(unittest.TestCase):
    CKPT = {"x-checkpoints": 3, "mode": "secondary"}

    def test_standby_with_checkpoint_fails_over(self):
        self.assertEqual(policy.promotion("n2", "n2", self.CKPT, False),
                         "failover")

    def test_recovered_checkpoint_counts(self):
        self.assertEqual(policy.promotion(
            "n2", "n2", {"x-checkpoints": 0, "x-recovered": 7}, False),
            "failover")

    def test_standby_without_checkpoint_does_not(self):
        self.assertEqual(policy.promotion(
            "n2", "n2", {"x-checkpoints": 0}, False), "refuse")

    def test_not_the_standby(self):
        # a checkpoint here, but the CIB names no standby (the primary
        # revoked it before letting output out): never resume from it
        self.assertEqual(policy.promotion("n2", None, self.CKPT, False),
                         "refuse")
        self.assertEqual(policy.promotion("n2", "n1", self.CKPT, True),
                         "boot")

    def test_no_standby_running(self):
        self.assertEqual(policy.promotion("n2", "n2", None, True), "boot")
        self.assertEqual(policy.promotion("n2", "n2", None, False),
                         "refuse")


class StandbyVerdict(unittest.TestCase):
    def test_named_standby_with_checkpoint(self):
        for status in ("colo", "failed", "completed"):
            self.assertEqual(policy.standby_verdict(
                "n2", "n2", status, {"x-checkpoints": 5}, True), "standby")

    def test_waiting_for_a_primary(self):
        self.assertEqual(policy.standby_verdict(
            "n2", None, "setup", {"x-checkpoints": 0}, False), "waiting")
        self.assertEqual(policy.standby_verdict(
            "n2", None, "none", {}, True), "waiting")

    def test_being_synced(self):
        self.assertEqual(policy.standby_verdict(
            "n2", None, "active", {"x-checkpoints": 0}, True), "syncing")
        self.assertEqual(policy.standby_verdict(
            "n2", None, "colo", {"x-checkpoints": 2, "mode": "secondary"},
            False), "syncing")

    def test_stalled_after_a_checkpoint_is_lost(self):
        self.assertEqual(policy.standby_verdict(
            "n2", None, "colo", {"x-checkpoints": 2, "mode": "secondary"},
            True), "lost")

    def test_session_over_and_not_the_standby(self):
        self.assertEqual(policy.standby_verdict(
            "n2", "n1", "completed", {"x-checkpoints": 9, "mode": "none"},
            False), "lost")


class SessionVerdict(unittest.TestCase):
    def test_ended(self):
        for status in ("failed", "cancelled", "completed"):
            self.assertEqual(policy.session_verdict(status, 4, 0.1, 10),
                             ("end", "session " + status))

    def test_stalled_in_colo(self):
        self.assertEqual(policy.session_verdict("colo", 4, 10.5, 10),
                         ("end", "stalled"))

    def test_first_sync_gets_ten_minutes(self):
        self.assertEqual(policy.session_verdict("active", 0, 300, 10),
                         ("running", None))
        self.assertEqual(policy.session_verdict("active", 0, 601, 10),
                         ("end", "stalled"))

    def test_committed(self):
        self.assertEqual(policy.session_verdict("colo", 1, 0.2, 10),
                         ("committed", None))
        self.assertEqual(policy.session_verdict("colo", 0, 0.2, 10),
                         ("running", None))


class ReleaseVerdict(unittest.TestCase):
    def test_unclean_or_unknown_peer_holds(self):
        for state in ("unclean", "unknown"):
            ok, why = policy.release_verdict(state, 3600, 7.6)
            self.assertFalse(ok)
            self.assertIn("fenced", why)

    def test_offline_peer_releases_at_once(self):
        self.assertEqual(policy.release_verdict("offline", 0.0, 7.6),
                         (True, ""))

    def test_online_peer_after_membership_settles(self):
        self.assertFalse(policy.release_verdict("online", 7.5, 7.6)[0])
        self.assertTrue(policy.release_verdict("online", 7.7, 7.6)[0])


class Acting(unittest.TestCase):
    """The agent's actions on the verdicts, the cluster stood in for."""

    def setUp(self):
        for f in os.listdir(RUN):
            os.unlink(os.path.join(RUN, f))

    def settle(self, peer_state, waited):
        st = {"lost": {"at": protect.time.time() - waited, "peer": "n2"}}
        protect.save_primary_state(st)
        with mock.patch.object(protect, "cib_get", return_value="n2"), \
                mock.patch.object(protect, "cib_set") as cib_set, \
                mock.patch.object(protect, "cut_connections"), \
                mock.patch.object(protect, "in_cluster", return_value=True), \
                mock.patch.object(protect, "node_state",
                                  return_value=peer_state), \
                mock.patch.object(protect, "membership_settle_s",
                                  return_value=7.6), \
                mock.patch.object(protect, "release_output") as release:
            done = protect.settle_lost({"agent_qmp": "x"}, st)
        # the standby's property goes first, whatever follows
        cib_set.assert_called_once_with("standby", None)
        return done, release.called, protect.primary_state()

    def test_output_stays_held_for_an_unclean_peer(self):
        done, released, st = self.settle("unclean", 600)
        self.assertFalse(done)
        self.assertFalse(released)
        self.assertTrue(st["lost"])

    def test_output_goes_once_the_peer_is_fenced(self):
        done, released, st = self.settle("offline", 0.5)
        self.assertTrue(done)
        self.assertTrue(released)
        self.assertIsNone(st["lost"])

    def test_online_peer_waits_for_membership(self):
        self.assertFalse(self.settle("online", 2)[1])
        self.assertTrue(self.settle("online", 8)[1])

    def promote(self, standby_node, colo, vm_node=None):
        rec = {"qmp": "q", "pid": 1, "start": "1"}
        cib = {"standby": standby_node, "vm-node": vm_node}
        with mock.patch.object(actions, "my_node", return_value="n2"), \
                mock.patch.object(actions, "cib_get", side_effect=cib.get), \
                mock.patch("colo_ocf.cib.cib_get", side_effect=cib.get), \
                mock.patch("colo_ocf.cib.my_node", return_value="n2"), \
                mock.patch.object(actions, "cib_set"), \
                mock.patch.object(actions, "vm_record", return_value=None), \
                mock.patch.object(actions, "secondary_record",
                                  return_value=rec), \
                mock.patch.object(actions, "secondary_status",
                                  return_value=({"status": "colo"}, colo)), \
                mock.patch.object(actions, "failover") as failover, \
                mock.patch.object(actions, "boot_vm") as boot, \
                mock.patch.object(actions, "stop_secondary"):
            try:
                actions.action_promote()
                err = None
            except ocf.Failure as e:
                err = str(e)
        return failover.called, boot.called, err

    def test_promote_fails_over_from_the_standby(self):
        self.assertEqual(self.promote("n2", {"x-checkpoints": 4}),
                         (True, False, None))

    def test_promote_refuses_an_old_checkpoint(self):
        # the CIB names no standby: the checkpoint here is not the VM's,
        # and the disks of the node that ran it last are newer
        failed_over, booted, err = self.promote(None, {"x-checkpoints": 4},
                                                vm_node="n1")
        self.assertFalse(failed_over)
        self.assertFalse(booted)
        self.assertIn("latest disks are on n1", err)

    def test_standby_monitor_scores(self):
        rec = {"qmp": "q", "token": "t"}
        cases = [("n2", "colo", {"x-checkpoints": 3, "mode": "secondary"},
                  ocf.SCORE_STANDBY),
                 (None, "setup", {"x-checkpoints": 0}, ocf.SCORE_BOOT)]
        for node, status, colo, score in cases:
            with mock.patch.object(standby, "my_node", return_value="n2"), \
                    mock.patch.object(standby, "in_cluster",
                                      return_value=True), \
                    mock.patch.object(standby, "cib_get",
                                      return_value=node), \
                    mock.patch.object(standby, "may_boot",
                                      return_value=(True, "")), \
                    mock.patch.object(standby, "secondary_status",
                                      return_value=({"status": status},
                                                    colo)), \
                    mock.patch.object(standby, "set_score") as set_score:
                self.assertEqual(standby.monitor_unpromoted(rec),
                                 ocf.OCF_SUCCESS)
                set_score.assert_called_with(score)


class LibvirtDomain(unittest.TestCase):
    """libvirt_xml: the VM is a libvirt domain, named to colo-primary and
    colo-secondary as docs/libvirt.rst says; the agent's own QEMU
    parameters are refused with it."""

    def setUp(self):
        self.xml = os.path.join(RUN, "vm1.xml")
        with open(self.xml, "w") as f:
            f.write("<domain type='kvm'><name>vm1</name></domain>")
        self.env = mock.patch.dict(os.environ, {
            "OCF_RESKEY_libvirt_xml": self.xml,
            "OCF_RESKEY_libvirt_uri": "qemu+ssh://n1/system"})
        self.env.start()

    def tearDown(self):
        self.env.stop()

    def test_colo_primary_gets_the_domain(self):
        vm = {"pid": 1, "start": 2, "domain": "vm1"}
        self.assertEqual(protect.vm_names(vm), [
            "--libvirt-domain", "vm1", "--libvirt-uri",
            "qemu+ssh://n1/system"])
        self.assertEqual(protect.vm_names({"qmp": "q", "ram": "r",
                                           "pid": 7}),
                         ["--qmp", "q", "--ram-file", "r", "--qemu-pid",
                          "7"])

    def test_the_standby_fails_over_into_libvirt(self):
        self.assertEqual(standby.failover_args(), [
            "-failover-libvirt-xml", self.xml, "-failover-libvirt-uri",
            "qemu+ssh://n1/system"])

    def test_validate(self):
        self.assertEqual(actions.validate_domain(), ocf.OCF_SUCCESS)
        with mock.patch.dict(os.environ, {"OCF_RESKEY_disks": "d0=/x"}):
            with self.assertRaises(ocf.Failure) as e:
                actions.validate_domain()
            self.assertIn("disks: not with libvirt_xml", str(e.exception))
        with open(self.xml, "w") as f:
            f.write("<domain/>")
        with self.assertRaises(ocf.Failure) as e:
            actions.validate_domain()
        self.assertIn("no <name>", str(e.exception))


class QmpClient(unittest.TestCase):
    """The shared client against a server that speaks QMP as QEMU does:
    a greeting, an event between command and reply, an error reply."""

    def serve(self, path, script):
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)

        def run():
            c, _ = srv.accept()
            f = c.makefile("rwb")
            f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
            f.flush()
            for reply in script:
                req = json.loads(f.readline())
                for line in reply(req):
                    f.write(json.dumps(line).encode() + b"\n")
                f.flush()
            c.close()
            srv.close()
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def test_events_kept_errors_raised_close_seen(self):
        path = os.path.join(RUN, "qmp.sock")
        self.serve(path, [
            lambda r: [{"return": {}, "id": r["id"]}],
            lambda r: [{"event": "STOP", "timestamp": {}},
                       {"return": {"status": "paused"}, "id": r["id"]}],
            lambda r: [{"error": {"class": "GenericError",
                                  "desc": "no such thing"},
                        "id": r["id"]}],
        ])
        q = qmp.Qmp(path, 5)
        self.assertEqual(q.cmd("query-status"), {"status": "paused"})
        self.assertEqual([e["event"] for e in q.events], ["STOP"])
        with self.assertRaisesRegex(qmp.QmpError, "x: no such thing"):
            q.cmd("x")
        with self.assertRaises(qmp.QmpClosed):
            q.cmd("query-status")
        q.close()

    def test_no_server(self):
        with self.assertRaises(qmp.QmpError):
            qmp.Qmp(os.path.join(RUN, "nobody.sock"), 1)


if __name__ == "__main__":
    unittest.main()
