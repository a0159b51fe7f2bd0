#!/usr/bin/env python3
"""Nothing left behind: what the test suite leaves in /dev/shm and /tmp.

meson runs this script twice: first of all (`--before`, priority 1000,
alone) it lists both folders into the build tree; last of all (`--after`,
priority -1000, alone, so every other test has ended) it lists them again
and fails naming every entry that appeared meanwhile and its size.  Our
programs remove their scratch folders when they exit and the next run
removes those a killed one left (util/scratch-dir.c); every test removes
what its killed processes leave; on tmpfs a leftover is memory.

Run alone (no argument), it checks the programs themselves: a SIGKILLed
colo-primary's and colo-secondary's scratch folders are removed by their
next start, and a clean exit leaves nothing.
"""

import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import colotest as ct  # noqa: E402

FOLDERS = ("/dev/shm", "/tmp")
SNAPSHOT = os.path.join(ct.BUILD_ROOT, "meson-logs", "leftovers-before.json")


def listing():
    return {d: sorted(os.listdir(d)) for d in FOLDERS if os.path.isdir(d)}


def before():
    with open(SNAPSHOT, "w") as f:
        json.dump(listing(), f)
    print("listed %s" % ", ".join("%s (%d entries)" % (d, len(n))
                                  for d, n in listing().items()))
    return 0


def after():
    with open(SNAPSHOT) as f:
        was = json.load(f)
    left = []
    for d, names in listing().items():
        for n in sorted(set(names) - set(was.get(d, []))):
            p = os.path.join(d, n)
            left.append("%s (%d bytes)" % (p, ct.folder_bytes(p)))
    if left:
        print("the test suite left %d entries behind:\n  %s"
              % (len(left), "\n  ".join(left)), file=sys.stderr)
        return 1
    print("nothing new in %s" % ", ".join(FOLDERS))
    return 0


class Programs(ct.TempDirTestCase):
    """Each program on its own: a clean exit leaves nothing, and a killed
    one's folder goes at the next start."""

    def start_secondary(self):
        qmp = os.path.join(self.tmp, "s.qmp")
        p = subprocess.Popen([ct.SECONDARY, "-incoming", "defer", "-qmp",
                              "unix:%s,server=on,wait=off" % qmp],
                             stderr=subprocess.PIPE, text=True)
        ct.wait_for(lambda: os.path.exists(qmp), 10, "colo-secondary")
        os.unlink(qmp)
        folder = "/dev/shm/colo-secondary.%d." % p.pid
        mine = [os.path.join("/dev/shm", n) for n in os.listdir("/dev/shm")
                if os.path.join("/dev/shm", n).startswith(folder)]
        self.assertEqual(len(mine), 1, os.listdir("/dev/shm"))
        return p, mine[0]

    def test_colo_secondary_folder(self):
        p, folder = self.start_secondary()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 0, err)
        self.assertFalse(os.path.exists(folder), "kept after a clean exit")
        p, folder = self.start_secondary()
        p.kill()
        p.wait()
        p.stderr.close()
        self.assertTrue(os.path.exists(folder))
        p2, folder2 = self.start_secondary()
        # the message comes before QMP listens
        p2.send_signal(signal.SIGTERM)
        _, err = p2.communicate(timeout=20)
        self.assertEqual(p2.returncode, 0, err)
        self.assertFalse(os.path.exists(folder), err)
        self.assertIn("removed %s, left by a colo-secondary that was killed"
                      % folder, err)
        self.assertFalse(os.path.exists(folder2))

    def test_colo_primary_folder(self):
        # a colo-primary killed while it protected a VM left its work
        # folder in the run folder; the next one removes it, and its own
        # goes when it exits
        run = os.path.join(self.tmp, "run")
        os.makedirs(run)
        env = dict(os.environ, COLO_PRIMARY_RUNDIR=run)
        vm = ct.Qemu("10.0", self.tmp, mem_mb=64, bios=ct.GUEST_BIOS,
                     ram_path=os.path.join(self.tmp, "vm.ram"))
        sec = ct.ColoSecondary(self.tmp)
        try:
            ct.wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
            vm.qmp.close()
            agent = subprocess.Popen(
                [ct.PRIMARY_AGENT, "--qmp", vm.qmp_path, "--ram-file",
                 vm.ram_path, "--connect", "tcp:127.0.0.1:%d" % sec.port],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=env)
            ct.wait_for(lambda: sec.qmp.cmd("query-colo-status")
                        ["mode"] == "secondary", 60, "protection")
            left = os.listdir(run)
            self.assertEqual(left, ["colo-primary.%d.%s" % (
                agent.pid, left[0].rsplit(".", 1)[1])], left)
            agent.kill()
            agent.wait()
            sec.quit()
            os.makedirs(os.path.join(self.tmp, "sec2"))
            sec = ct.ColoSecondary(os.path.join(self.tmp, "sec2"))
            p = subprocess.run([ct.PRIMARY_AGENT, "--qmp", vm.qmp_path,
                                "--ram-file", vm.ram_path, "--connect",
                                "tcp:127.0.0.1:%d" % sec.port,
                                "--checkpoints", "3", "-q"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env,
                               timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("removed %s, left by a colo-primary that was "
                          "killed" % os.path.join(run, left[0]), p.stderr)
            self.assertEqual(os.listdir(run), [], p.stderr)
        finally:
            vm.kill()
            sec.quit()


if __name__ == "__main__":
    if sys.argv[1:] == ["--before"]:
        sys.exit(before())
    if sys.argv[1:] == ["--after"]:
        sys.exit(after())
    ct.main()
