#!/usr/bin/env python3
"""Benchmark (not a test): what holding the VM's network output until its
checkpoint commits costs a client.  The real Linux guest (256 MiB, TCG)
serves an echo port (request/response: 64-byte line, wait for it back;
one connection, then 16 at once) and a bulk port (zeros as fast as they go); a client in the benchmark's
own network namespace measures request latency and stream throughput:

  unprotected          the VM alone
  protected, no buffer colo-primary --no-net-buffer at 100 ms (the
                       checkpoints' own cost)
  buffered 25/50/100   colo-primary with the network buffer at
                       x-checkpoint-delay 25, 50 and 100 ms

Writes bench/out/net_buffer.txt and net_buffer.png."""

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import colotest as ct  # noqa: E402

OUT = os.path.join(HERE, "out")
SECONDS = float(os.environ.get("BENCH_NET_SECONDS", "8"))
CONFIGS = [
    ("unprotected", None),
    ("no buffer, 100 ms", ["--no-net-buffer", "--x-checkpoint-delay", "100"]),
    ("buffered, 100 ms", ["--x-checkpoint-delay", "100"]),
    ("buffered, 50 ms", ["--x-checkpoint-delay", "50"]),
    ("buffered, 25 ms", ["--x-checkpoint-delay", "25"]),
]


def client(guest, mode, port, *extra):
    p = guest.client(mode, ct.GUEST_IP, port, SECONDS, *extra)
    out, err = p.communicate(timeout=SECONDS + 120)
    if p.returncode != 0:
        raise RuntimeError("%s client: %s" % (mode, err.decode()))
    return json.loads(out.decode().strip().splitlines()[-1])


def one(name, agent_args):
    tmp = tempfile.mkdtemp(prefix="colo-bench-net-", dir="/dev/shm")
    ns = ct.NetNs("bench")
    guest = None
    try:
        guest = ct.ProtectedLinuxGuest(
            tmp, ns, protect=agent_args is not None, failover_net=False,
            agent_args=agent_args or ())
        rr = client(guest, "rr", 7779)
        rr16 = client(guest, "rr", 7779, 16)
        bulk = client(guest, "bulk", 7780)
        fig = {}
        if agent_args is not None:
            info = guest.agent_query()
            fig = {"checkpoints": info.get("x-colo-checkpoints"),
                   "pause_median_ms": info.get("x-colo-pause-median-us",
                                               0) / 1000.0,
                   "net": info.get("x-colo-net-buffer")}
        return {"config": name, "rr": rr, "rr16": rr16, "bulk": bulk, **fig}
    finally:
        if guest:
            guest.close()
        ns.close()
        subprocess.run(["rm", "-rf", tmp])


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("net_buffer: no matplotlib (python3-matplotlib), no plot")
        return
    names = [r["config"] for r in results]
    fig, (ax1, ax3, ax2) = plt.subplots(1, 3, figsize=(15, 4.5))
    x = range(len(names))
    ax1.bar([i - 0.2 for i in x], [r["rr"]["p50_ms"] for r in results],
            width=0.4, label="median")
    ax1.bar([i + 0.2 for i in x], [r["rr"]["p99_ms"] for r in results],
            width=0.4, label="p99")
    ax1.set_ylabel("request latency (ms)")
    ax1.set_title("request/response, 64 bytes")
    ax1.legend()
    ax3.bar(list(x), [r["rr16"]["requests"] / r["rr16"]["seconds"]
                      for r in results])
    ax3.set_yscale("log")
    ax3.set_ylabel("requests/s (log)")
    ax3.set_title("request/response, 16 connections")
    ax2.bar(list(x), [r["bulk"]["bytes"] / r["bulk"]["seconds"] / 1e6
                      for r in results])
    ax2.set_yscale("log")
    ax2.set_ylabel("MB/s (log)")
    ax2.set_title("bulk stream from the guest")
    ax1.set_yscale("log")
    for ax in (ax1, ax3, ax2):
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    fig.suptitle("network output held until its checkpoint commits "
                 "(Linux guest, 256 MiB, TCG)")
    fig.tight_layout()
    fig.savefig(path)
    print("net_buffer: plot", path)


def main():
    ct.require_qemu("10.0")
    ct.require_netns()
    os.makedirs(OUT, exist_ok=True)
    results = []
    lines = []
    for name, args in CONFIGS:
        r = one(name, args)
        results.append(r)
        bulk_mbs = r["bulk"]["bytes"] / r["bulk"]["seconds"] / 1e6
        line = ("%-18s  rr: %5d req in %.0f s, latency mean %7.2f ms, "
                "median %7.2f, p99 %7.2f; 16 connections: %6.0f req/s;  "
                "bulk %7.2f MB/s" % (
                    name, r["rr"]["requests"], r["rr"]["seconds"],
                    r["rr"]["mean_ms"], r["rr"]["p50_ms"], r["rr"]["p99_ms"],
                    r["rr16"]["requests"] / r["rr16"]["seconds"], bulk_mbs))
        if r.get("net"):
            line += ("; held->released latency mean %.1f ms, %d packets"
                     % (r["net"]["release-latency-mean-us"] / 1000.0,
                        r["net"]["packets-released"]))
        if r.get("checkpoints"):
            line += "; pause median %.1f ms" % r["pause_median_ms"]
        print(line, flush=True)
        lines.append(line)
    base = results[0]
    base_mbs = base["bulk"]["bytes"] / base["bulk"]["seconds"]
    lines.append("")
    for r in results[1:]:
        mbs = r["bulk"]["bytes"] / r["bulk"]["seconds"]
        lines.append("%-18s  request rate %.3fx of unprotected (16 "
                     "connections: %.3fx), bulk %.3fx"
                     % (r["config"], r["rr"]["requests"] /
                        max(base["rr"]["requests"], 1),
                        r["rr16"]["requests"] / max(base["rr16"]["requests"],
                                                    1), mbs / base_mbs))
    print("\n".join(lines[len(results):]))
    with open(os.path.join(OUT, "net_buffer.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(OUT, "net_buffer.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot(results, os.path.join(OUT, "net_buffer.png"))


if __name__ == "__main__":
    main()
