"""The OCF resource agent tools/ocf/colo on its own, outside a cluster:
its meta-data is well-formed and valid against the OCF DTD and lists every
action; monitor and stop of nothing; validate-all's refusals; and
ocf-tester (resource-agents), which starts, promotes (boots a real VM in
stock QEMU), demotes and stops it, twice each.  Also colo-primary's
--release-held-output, which the agent uses, on bad input.  The cluster
itself is test_cluster.py (make check-cluster)."""

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import colotest
from colotest import PRIMARY_AGENT, SECONDARY, SOURCE_ROOT, qemu_binary

AGENT = os.path.join(SOURCE_ROOT, "tools", "ocf", "colo")
ACTIONS = {"start", "stop", "monitor", "promote", "demote", "notify",
           "meta-data", "validate-all"}
RA_DTD = "/usr/share/resource-agents/ra-api-1.dtd"


class OcfAgentTest(colotest.TempDirTestCase):
    def env(self, **params):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("OCF_")}
        env["COLO_OCF_RUN_DIR"] = os.path.join(self.tmp, "run")
        base = {"qemu_args": "-accel tcg", "memory": "64",
                "ram_dir": os.path.join(self.tmp, "ram"),
                "state_dir": os.path.join(self.tmp, "state"),
                "qemu": qemu_binary() or "qemu-system-x86_64",
                "colo_secondary": SECONDARY, "colo_primary": PRIMARY_AGENT,
                "migration_port": "18890", "nbd_port": "18809",
                "addresses": "%s=127.0.0.1" % os.uname().nodename}
        base.update(params)
        for k, v in base.items():
            env["OCF_RESKEY_" + k] = v
        env["OCF_RESOURCE_INSTANCE"] = "colotest"
        return env

    def agent(self, action, **params):
        return subprocess.run([AGENT, action], env=self.env(**params),
                              capture_output=True, text=True, timeout=120)

    def test_meta_data(self):
        p = self.agent("meta-data")
        self.assertEqual(p.returncode, 0, p.stderr)
        root = ET.fromstring(p.stdout)
        self.assertEqual(root.tag, "resource-agent")
        self.assertEqual(root.get("name"), "colo")
        actions = {a.get("name") for a in root.iter("action")}
        self.assertTrue(ACTIONS <= actions, ACTIONS - actions)
        roles = {a.get("role") for a in root.iter("action")
                 if a.get("name") == "monitor"}
        self.assertEqual(roles, {"Promoted", "Unpromoted"})
        params = {x.get("name") for x in root.iter("parameter")}
        for need in ("qemu_args", "ram_dir", "migration_port", "nbd_port",
                     "disks", "nics"):
            self.assertIn(need, params)
        # valid against the OCF DTD, as ocf-tester checks it
        self.assertTrue(os.path.exists(RA_DTD), "resource-agents is missing "
                        "(scripts/install-deps.sh)")
        v = subprocess.run(["xmllint", "--noout", "--dtdvalid", RA_DTD, "-"],
                           input=p.stdout, capture_output=True, text=True)
        self.assertEqual(v.returncode, 0, v.stderr)

    def test_nothing_running(self):
        p = self.agent("monitor")
        self.assertEqual(p.returncode, 7, p.stderr)
        p = self.agent("stop")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.agent("monitor").returncode, 7)
        self.assertEqual(self.agent("demote").returncode, 0)
        self.assertEqual(self.agent("stop").returncode, 0)
        self.assertEqual(self.agent("monitor").returncode, 7)
        self.assertEqual(self.agent("notify").returncode, 0)
        p = self.agent("frobnicate")
        self.assertEqual(p.returncode, 3)

    def test_validate_refusals(self):
        cases = [
            ({"colo_secondary": "/nonexistent/colo-secondary"}, 5,
             "colo_secondary: not found"),
            ({"qemu_args": "-m 512"}, 6, "-m is the agent's"),
            ({"qemu_args": "-qmp unix:/x"}, 6, "-qmp is the agent's"),
            ({"qemu_args": "-append 'unterminated"}, 6, "qemu_args"),
            ({"disks": "disk0"}, 6, "is not NODE=IMAGE"),
            ({"disks": "disk0=/nonexistent.img"}, 6, "is not a file"),
            ({"nics": "mac=52:54:00:00:00:01"}, 6, "needs bridge="),
            ({"memory": "lots"}, 6, "must be numbers"),
            ({"tls_dir": self.tmp}, 6, "has no ca-cert.pem"),
            ({"tls_dir": "/srv/a,b"}, 6, "has a comma"),
        ]
        for params, rc, words in cases:
            p = self.agent("validate-all", **params)
            self.assertEqual(p.returncode, rc, (params, p.stderr))
            self.assertIn(words, p.stderr, params)
            # start refuses the same way, and leaves nothing running
            p = self.agent("start", **params)
            self.assertEqual(p.returncode, rc, (params, p.stderr))
            self.assertEqual(self.agent("monitor").returncode, 7)

    def test_ocf_tester(self):
        tester = shutil.which("ocf-tester")
        self.assertTrue(tester, "ocf-tester is missing (resource-agents; "
                        "scripts/install-deps.sh)")
        image = os.path.join(self.tmp, "disk0.img")
        with open(image, "wb") as f:
            f.truncate(16 << 20)
        env = self.env()
        argv = [tester, "-n", "colotest"]
        params = {"qemu_args": "-accel tcg -device virtio-blk-pci,"
                               "drive=disk0",
                  "disks": "disk0=" + image}
        for k in ("memory", "ram_dir", "state_dir", "qemu", "colo_secondary",
                  "colo_primary", "migration_port", "nbd_port", "addresses"):
            params[k] = env["OCF_RESKEY_" + k]
        for k, v in params.items():
            argv += ["-o", "%s=%s" % (k, v)]
        run_env = {k: v for k, v in env.items()
                   if not k.startswith("OCF_RESKEY_")}
        p = subprocess.run(argv + [AGENT], env=run_env, capture_output=True,
                           text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("passed all tests", p.stdout)
        log = colotest.read_text(os.path.join(self.tmp, "state",
                                              "agent.log"))
        # it really booted a VM and a standby, and left nothing behind
        self.assertIn("booting the VM", log)
        self.assertIn("starting the standby", log)
        self.assertEqual(self.agent("monitor").returncode, 7)
        left = subprocess.run(["pgrep", "-f", "guest=colotest"],
                              capture_output=True, text=True)
        self.assertEqual(left.stdout.strip(), "")

    def test_release_held_output_bad_input(self):
        p = subprocess.run([PRIMARY_AGENT, "--release-held-output"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("one of --qmp or --libvirt-domain is required",
                      p.stderr)
        p = subprocess.run([PRIMARY_AGENT, "--qmp",
                            os.path.join(self.tmp, "nothing.qmp"),
                            "--release-held-output"], capture_output=True,
                           text=True)
        self.assertEqual(p.returncode, 3)
        self.assertIn("releasing the VM's held output", p.stderr)
        p = subprocess.run([PRIMARY_AGENT, "--qmp", "x", "--ram-file", "y",
                            "--connect", "tcp:127.0.0.1:1", "--held-output",
                            "maybe"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--held-output takes release or keep", p.stderr)


if __name__ == "__main__":
    colotest.main()
