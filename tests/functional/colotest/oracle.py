"""The tests' own record of the primary: PrimaryOracle (a QMP proxy that
hashes RAM at every pause), CommitWatch (holds the secondary's
acknowledgements until checked), register comparisons."""

import json
import os
import socket
import subprocess

from .base import sha256_file, wait_for
from .net import LoopbackProxy, shut_down, socket_lines
from .record import recv_exact


def protect_with_oracle(vm, workdir, port, primary):
    """colo-primary (@primary) protecting @vm (a Qemu running the
    colo-guest) into the secondary on @port, through a PrimaryOracle that
    records the VM's RAM and registers at every pause; QEMU's pid is given,
    so the default tracking (uffd-wp where the kernel has it) is used.
    Returns (oracle, colo-primary's Popen)."""
    wait_for(lambda: "C=" in vm.serial(), 60, "the guest")
    vm.qmp.close()
    oracle = PrimaryOracle(vm.qmp_path, vm.ram_path,
                           os.path.join(workdir, "oracle.qmp"))
    agent = subprocess.Popen(
        [primary, "--qmp", oracle.path, "--ram-file", vm.ram_path,
         "--connect", "tcp:127.0.0.1:%d" % port, "--qemu-pid",
         str(vm.proc.pid), "--x-checkpoint-delay", "100", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return oracle, agent


class PrimaryOracle:
    """The test's own record of the primary VM at every checkpoint pause.

    A QMP proxy between colo-primary and the primary QEMU: colo-primary is
    given @path instead of QEMU's socket.  When colo-primary sends "cont"
    (the VM is stopped and its device state captured), the proxy first
    takes the SHA-256 of the VM's RAM file and QEMU's own "info registers",
    through its own commands on the same connection, and only then lets
    the "cont" through.  When colo-primary sends "stop", the previous
    checkpoint has been acknowledged as loaded (VMSTATE_LOADED or, for the
    initial sync, CHECKPOINT_READY) and the secondary is idle: @before_stop
    (the pause number) runs before the stop goes on, so a test can compare
    the secondary's RAM file with the pause that produced it; given
    @secondary_ram (the secondary's main RAM file), the oracle does that
    itself at every stop and counts it in .verified.

    colo-primary pauses the VM twice for the initial sync (the stream head,
    then the pages changed while RAM was sent), then once per checkpoint:
    the RAM of committed checkpoint n (query-colo-status x-checkpoints,
    0 = the initial state) is pauses[n + INITIAL_PAUSES - 1].

    Nothing here uses colo-standby code: the oracle is QEMU and hashlib."""

    INITIAL_PAUSES = 2

    def __init__(self, qemu_qmp_path, ram_path, path, before_stop=None,
                 secondary_ram=None):
        import threading
        self.upstream = qemu_qmp_path
        self.ram_path = ram_path
        self.path = path
        self.before_stop = before_stop
        self.secondary_ram = secondary_ram
        self.verified = 0
        self.pauses = []        # [{"ram": sha256, "regs": {...}}]
        self.errors = []        # exceptions raised in the hooks
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(4)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def committed(self, n):
        """The pause whose state checkpoint @n committed."""
        i = n + self.INITIAL_PAUSES - 1
        if i >= len(self.pauses):
            raise AssertionError("checkpoint %d committed, but the primary "
                                 "was paused only %d times"
                                 % (n, len(self.pauses)))
        return self.pauses[i]

    def _accept(self):
        import threading
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,),
                             daemon=True).start()

    def close(self):
        try:
            self.listener.close()
        except OSError:
            pass

    def _serve(self, client):
        import queue
        import threading
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            up.connect(self.upstream)
        except OSError:
            client.close()
            return
        replies = queue.Queue()

        def downstream():
            # QEMU -> colo-primary, keeping the replies to our own ids
            try:
                for line in socket_lines(up):
                    if b'"oracle-' in line:
                        replies.put(json.loads(line))
                    else:
                        client.sendall(line + b"\n")
            except OSError:
                pass
            replies.put(None)
            shut_down(client, up)

        seq = [0]

        def ask(cmd, **args):
            seq[0] += 1
            req = {"execute": cmd, "id": "oracle-%d" % seq[0]}
            if args:
                req["arguments"] = args
            try:
                up.sendall(json.dumps(req).encode() + b"\n")
            except OSError:
                # QEMU killed while a pause is recorded (the kill tests):
                # its cont never arrives, so nothing of it is committed
                raise EOFError("QEMU went away")
            r = replies.get(timeout=30)
            if r is None:
                raise EOFError("QEMU went away")
            if "error" in r:
                raise RuntimeError("QMP %s: %s" % (cmd, r["error"]))
            return r["return"]

        t = threading.Thread(target=downstream, daemon=True)
        t.start()
        try:
            for line in socket_lines(client):
                try:
                    cmd = json.loads(line).get("execute")
                except ValueError:
                    cmd = None
                try:
                    if cmd == "cont":
                        self._record(ask)
                    elif cmd == "stop":
                        self._before_stop(len(self.pauses))
                except EOFError:
                    pass
                except Exception as e:  # reported by check()
                    self.errors.append(e)
                up.sendall(line + b"\n")
        except OSError:
            pass
        shut_down(client, up)       # wakes the thread reading QEMU too
        t.join(10)
        client.close()
        up.close()

    def _before_stop(self, pauses):
        if self.secondary_ram and pauses >= self.INITIAL_PAUSES:
            self.verify_secondary(pauses - self.INITIAL_PAUSES)
        if self.before_stop:
            self.before_stop(pauses)

    def verify_secondary(self, n):
        """The secondary's RAM file must be the primary's RAM at the pause
        of checkpoint @n (call it while the secondary is idle)."""
        got = sha256_file(self.secondary_ram)
        want = self.committed(n)["ram"]
        if got != want:
            raise AssertionError("after checkpoint %d the secondary's RAM "
                                 "is not the primary's" % n)
        self.verified += 1

    def _record(self, ask):
        regs = parse_registers(ask("human-monitor-command",
                                   **{"command-line": "info registers"}))
        status = ask("query-status")["status"]
        ram = sha256_file(self.ram_path)
        with self.lock:
            self.pauses.append({"ram": ram, "regs": regs,
                                "status": status})

    def check(self):
        """Raises the first error a hook met."""
        if self.errors:
            raise self.errors[0]


# "info registers" fields that describe the CPU's architectural state.
# Left out: TCG's lazy condition-code cache (CCS/CCD/CCO, folded into
# RFL on save) and the halted flag's siblings that QEMU recomputes.
_REG_SKIP = ("CCS", "CCD", "CCO")


def parse_registers(text):
    """{name: value} from QEMU's "info registers" of one CPU."""
    import re
    regs = {}
    for line in text.splitlines():
        for m in re.finditer(r"([A-Z][A-Z0-9]*)\s*=\s*([0-9a-fA-F]+"
                             r"(?: [0-9a-fA-F]+ [0-9a-fA-F]+ [0-9a-fA-F]+)?)",
                             line):
            name, value = m.group(1), m.group(2)
            if name in _REG_SKIP:
                continue
            regs.setdefault(name, value)
    return regs


class CommitWatch(LoopbackProxy):
    """A TCP proxy between a COLO primary and a secondary on 127.0.0.1
    that stops each acknowledgement of a commit on its way back (the
    secondary's CHECKPOINT_READY for the initial state, VMSTATE_LOADED
    for checkpoint k): @on_commit(k) runs while the primary has not been
    told yet, and only then is the message forwarded.  A secondary that
    answers before its RAM files hold the checkpoint is caught in the act.
    Errors from @on_commit are kept in .errors."""

    def __init__(self, target_port, on_commit):
        self.on_commit = on_commit
        self.errors = []
        self.commits = 0
        LoopbackProxy.__init__(self, target_port)

    def _forward(self, a, b):
        try:
            while True:
                data = a.recv(1 << 16)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        shut_down(a, b)

    def _run(self):
        import threading
        src, _ = self.listener.accept()
        dst = socket.create_connection(("127.0.0.1", self.target_port))
        for s in (src, dst):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = threading.Thread(target=self._forward, args=(src, dst),
                             daemon=True)
        t.start()
        try:
            # the secondary's direction: bare be32 messages
            while True:
                msg = recv_exact(dst, 4, timeout=None)
                if msg in (b"\x00\x00\x00\x00", b"\x00\x00\x00\x06"):
                    try:
                        self.on_commit(self.commits)
                    except Exception as e:     # reported by check()
                        self.errors.append(e)
                    self.commits += 1
                src.sendall(msg)
        except (OSError, EOFError):
            pass
        shut_down(src, dst)
        t.join(10)
        src.close()
        dst.close()
        self.listener.close()

    def check(self):
        if self.errors:
            raise self.errors[0]


def registers_diff(got, want):
    """{register: (got, want)} for every register that differs."""
    return {k: (got.get(k), want.get(k)) for k in set(got) | set(want)
            if got.get(k) != want.get(k)}
