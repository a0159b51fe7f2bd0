"""Helpers for colo-standby's functional tests, one concern per module:

  paths      where the programs, guests and data are
  base       waiting, hashing, lines, TempDirTestCase, main()
  qmp        a QMP client
  procs      stock QEMU and colo-secondary as child processes
  guest      the colo-guest's counters, the Linux guest, reference streams
  record     an independent reading of what colo-secondary leaves behind
  net        proxies, recorders, network namespaces, line streams
  oracle     PrimaryOracle, CommitWatch: the tests' own record of the
             primary
  protected  the Linux guest protected end to end
  tls        throw-away certificates

Tests import the package (`import colotest as ct`) and use the names
re-exported here.  Python standard library only."""

from . import paths          # ct.paths.SECONDARY may be replaced
from .paths import (BUILD_ROOT, DATA, EXIT_SKIP, GUEST_BIOS, HALT_BIOS,
    LINUX_GUEST, NETCLIENT, PRIMARY_AGENT, QEMU72_ROOT, SECONDARY, SOURCE_ROOT,
    TEST_PRIMARY)
from .base import (complete_lines, folder_bytes, kill_pid, main,
    read_manifest, read_text,
    sha256_file, TempDirTestCase, wait_for)
from .qmp import (QMP)
from .procs import (ColoSecondary, DiskSecondary, LoggedProcess, Qemu,
    qemu_binary, qemu_command, qemu_status, require_qemu, run_once,
    Secondary, start_logged)
from .guest import (cpio_newc, guest_counters, make_colo_initial_stream,
    qemu_load_reference, require_linux_guest, run_in_linux_guest)
from .record import (block_file, ram_files, ram_matches, read_record,
    record_devices, recv_exact, replay)
from .badlink import (BadLink)
from .net import (LineStream, LoopbackProxy, NetNs, require_netns,
    service_stream_problems, shut_down, socket_lines, TcpRecorder)
from .oracle import (_REG_SKIP, CommitWatch, parse_registers, PrimaryOracle,
    protect_with_oracle, registers_diff)
from .protected import (GUEST_IP, GUEST_MAC, ProtectedLinuxGuest)
from .tls import (_openssl, _tls_ca, _tls_leaf, make_tls_certs,
    make_tls_node_certs)

__all__ = [
    "BadLink",
    "paths", "BUILD_ROOT", "DATA", "EXIT_SKIP", "GUEST_BIOS", "HALT_BIOS",
    "LINUX_GUEST", "NETCLIENT", "PRIMARY_AGENT", "QEMU72_ROOT", "SECONDARY",
    "SOURCE_ROOT", "TEST_PRIMARY", "complete_lines", "folder_bytes", "kill_pid", "main",
    "read_manifest", "read_text", "sha256_file", "TempDirTestCase", "wait_for",
    "QMP", "ColoSecondary", "DiskSecondary", "LoggedProcess", "Qemu",
    "qemu_binary", "qemu_command", "qemu_status", "require_qemu",
    "run_once", "Secondary", "start_logged",
    "cpio_newc", "guest_counters", "make_colo_initial_stream",
    "qemu_load_reference", "require_linux_guest", "run_in_linux_guest",
    "block_file", "ram_files", "ram_matches", "read_record", "record_devices",
    "recv_exact", "replay", "LineStream", "LoopbackProxy", "NetNs",
    "require_netns", "service_stream_problems", "shut_down", "socket_lines",
    "TcpRecorder", "_REG_SKIP", "CommitWatch", "parse_registers",
    "PrimaryOracle", "protect_with_oracle", "registers_diff", "GUEST_IP",
    "GUEST_MAC", "ProtectedLinuxGuest", "_openssl", "_tls_ca", "_tls_leaf",
    "make_tls_certs", "make_tls_node_certs",
]
