#!/usr/bin/env python3
"""Benchmark (not a test): what holding the VM's network output until its
checkpoint commits costs a client, on the timer and with output-triggered
checkpoints.  The real Linux guest (256 MiB, TCG) serves an echo port
(request/response: 64-byte line, wait for it back; one connection, then
16 at once), a bulk port (zeros as fast as they go), a sink (the client
uploads) and a compute loop; a client in the benchmark's own network
namespace measures request latency, stream throughput both ways, and the
compute loop's speed while one connection's requests run:

  unprotected          the VM alone
  no buffer, 100 ms    colo-primary --no-net-buffer (the checkpoints'
                       own cost)
  timer 100 / 25 ms    held output, checkpoints on the timer only
                       (--no-output-trigger)
  trigger gap N        held output starts a checkpoint, no sooner than
                       N ms after the last one began (the default
                       coalescing window and ack delay)
  coalesce 2 ms        the default gap (0), output waits 2 ms for more
  acks at once         pure TCP acks start one as other output does
  acks never           they wait for other output or the timer

Also per config: checkpoints/s of the idle guest, what started them, and
where a held reply's time goes (pause, send, the rest of the bytes to
RECEIVED, the secondary's load and commit to LOADED, the release).
BENCH_NET_CONFIGS=name,name picks configs by name.  Writes
bench/out/net_buffer.txt, .json and net_buffer.png (bars and the latency
CDF)."""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import colotest as ct  # noqa: E402

OUT = os.path.join(HERE, "out")
SECONDS = float(os.environ.get("BENCH_NET_SECONDS", "8"))
IDLE_SECONDS = 5.0
TIMER = ["--no-output-trigger"]
CONFIGS = [
    ("unprotected", None, {}),
    ("no buffer, 100 ms", ["--no-net-buffer", "--x-checkpoint-delay", "100"],
     {}),
    ("timer 100 ms", TIMER + ["--x-checkpoint-delay", "100"], {}),
    ("timer 25 ms", TIMER + ["--x-checkpoint-delay", "25"], {}),
    ("trigger gap 0", ["--x-checkpoint-min-gap", "0"], {}),
    ("trigger gap 5", ["--x-checkpoint-min-gap", "5"], {}),
    ("trigger gap 10", ["--x-checkpoint-min-gap", "10"], {}),
    ("coalesce 2 ms", ["--x-checkpoint-coalesce", "2000"], {}),
    ("acks at once", ["--x-checkpoint-ack-delay", "0"], {}),
    ("acks never", ["--x-checkpoint-ack-delay", "60000000"], {}),
]
SPLIT = ("output-wait-us", "pause-us", "send-us", "received-us",
         "commit-us", "release-us")


def client(guest, mode, port, *extra):
    p = guest.client(mode, ct.GUEST_IP, port, SECONDS, *extra)
    out, err = p.communicate(timeout=SECONDS + 120)
    if p.returncode != 0:
        raise RuntimeError("%s client: %s" % (mode, err.decode()))
    return json.loads(out.decode().strip().splitlines()[-1])


def checkpoints(info):
    return dict(info.get("x-colo-checkpoint-triggers", {}))


def diff_counts(a, b):
    return {k: b.get(k, 0) - a.get(k, 0) for k in b}


def one(name, agent_args, env):
    tmp = tempfile.mkdtemp(prefix="colo-bench-net-", dir="/dev/shm")
    ns = ct.NetNs("bench")
    guest = None
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        guest = ct.ProtectedLinuxGuest(
            tmp, ns, protect=agent_args is not None, failover_net=False,
            agent_args=agent_args or ())
        protected = agent_args is not None

        def query():
            return guest.agent_query() if protected else {}
        fig = {}
        q0 = query()
        time.sleep(IDLE_SECONDS)
        q1 = query()
        rr = client(guest, "rr", 7779)
        q2 = query()
        spin_alone = client(guest, "spin", 7782)
        load = guest.client("rr", ct.GUEST_IP, 7779, SECONDS)
        spin_busy = client(guest, "spin", 7782)
        load.communicate(timeout=SECONDS + 120)
        rr16 = client(guest, "rr", 7779, 16)
        bulk = client(guest, "bulk", 7780)
        upload = client(guest, "upload", 7781)
        if protected:
            idle = diff_counts(checkpoints(q0), checkpoints(q1))
            during = diff_counts(checkpoints(q1), checkpoints(q2))
            n = max(1, sum(during.values()))
            s1 = q1.get("x-colo-round-trip-sums", {})
            s2 = q2.get("x-colo-round-trip-sums", {})
            fig = {"idle_checkpoints_per_s": sum(idle.values()) /
                   IDLE_SECONDS,
                   "idle_triggers": idle,
                   "rr_triggers": during,
                   "rr_split_ms": {k: (s2.get(k, 0) - s1.get(k, 0)) / n /
                                   1000.0 for k in SPLIT},
                   "pause_median_ms": q2.get("x-colo-pause-median-us",
                                             0) / 1000.0,
                   "net": query().get("x-colo-net-buffer")}
        return {"config": name, "rr": rr, "rr16": rr16, "bulk": bulk,
                "upload": upload, "spin_alone": spin_alone,
                "spin_busy": spin_busy, **fig}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if guest:
            guest.close()
        ns.close()
        subprocess.run(["rm", "-rf", tmp])


def mbs(r):
    return r["bytes"] / r["seconds"] / 1e6


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("net_buffer: no matplotlib (python3-matplotlib), no plot")
        return
    names = [r["config"] for r in results]
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    (ax1, ax3, ax2), (ax4, ax5, ax6) = axes
    x = range(len(names))
    ax1.bar([i - 0.2 for i in x], [r["rr"]["p50_ms"] for r in results],
            width=0.4, label="median")
    ax1.bar([i + 0.2 for i in x], [r["rr"]["p99_ms"] for r in results],
            width=0.4, label="p99")
    ax1.set_ylabel("request latency (ms, log)")
    ax1.set_title("request/response, 64 bytes")
    ax1.set_yscale("log")
    ax1.legend()
    ax3.bar(list(x), [r["rr16"]["requests"] / r["rr16"]["seconds"]
                      for r in results])
    ax3.set_yscale("log")
    ax3.set_ylabel("requests/s (log)")
    ax3.set_title("request/response, 16 connections")
    ax2.bar([i - 0.2 for i in x], [mbs(r["bulk"]) for r in results],
            width=0.4, label="out of the guest")
    ax2.bar([i + 0.2 for i in x], [mbs(r["upload"]) for r in results],
            width=0.4, label="into the guest")
    ax2.set_yscale("log")
    ax2.set_ylabel("MB/s (log)")
    ax2.set_title("bulk TCP")
    ax2.legend()
    base = results[0]["spin_alone"]["rounds_per_s"] or 1
    ax4.bar([i - 0.2 for i in x], [r["spin_alone"]["rounds_per_s"] / base
                                   for r in results], width=0.4,
            label="idle network")
    ax4.bar([i + 0.2 for i in x], [r["spin_busy"]["rounds_per_s"] / base
                                   for r in results], width=0.4,
            label="one echo client running")
    ax4.set_ylabel("compute loop speed (x unprotected)")
    ax4.set_title("the guest's CPU left for its own work")
    ax4.legend()
    for ax in (ax1, ax3, ax2, ax4):
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
    for r in results:
        ms = r["rr"].get("sorted_ms") or []
        if ms:
            ax5.plot(ms, [(i + 1) / len(ms) for i in range(len(ms))],
                     label=r["config"])
    ax5.set_xscale("log")
    ax5.set_xlabel("request latency (ms, log)")
    ax5.set_ylabel("fraction of requests")
    ax5.set_title("latency CDF, one connection")
    ax5.legend(fontsize=7)
    split = [r for r in results if r.get("rr_split_ms")]
    bottom = [0.0] * len(split)
    for k in SPLIT:
        vals = [r["rr_split_ms"][k] for r in split]
        ax6.bar(range(len(split)), vals, bottom=bottom, label=k[:-3])
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax6.set_xticks(range(len(split)))
    ax6.set_xticklabels([r["config"] for r in split], rotation=25,
                        ha="right", fontsize=8)
    ax6.set_ylabel("ms per checkpoint (mean)")
    ax6.set_title("a held reply's wait, one echo client")
    ax6.legend(fontsize=7)
    fig.suptitle("network output held until its checkpoint commits "
                 "(Linux guest, 256 MiB, TCG)")
    fig.tight_layout()
    fig.savefig(path)
    print("net_buffer: plot", path)


def main():
    ct.require_qemu("10.0")
    ct.require_netns()
    os.makedirs(OUT, exist_ok=True)
    pick = os.environ.get("BENCH_NET_CONFIGS")
    configs = [c for c in CONFIGS if not pick or c[0] in pick.split(",")]
    results = []
    lines = []
    for name, args, env in configs:
        r = one(name, args, env)
        results.append(r)
        line = ("%-18s  rr median %7.2f ms, p99 %7.2f (%5d req); 16 conns "
                "%6.0f req/s; bulk out %7.2f MB/s, in %7.2f MB/s; compute "
                "%.0f/%.0f rounds/s" % (
                    name, r["rr"]["p50_ms"], r["rr"]["p99_ms"],
                    r["rr"]["requests"],
                    r["rr16"]["requests"] / r["rr16"]["seconds"],
                    mbs(r["bulk"]), mbs(r["upload"]),
                    r["spin_alone"]["rounds_per_s"],
                    r["spin_busy"]["rounds_per_s"]))
        if "idle_checkpoints_per_s" in r:
            line += ("; idle %.1f ckpt/s %s; rr triggers %s; split ms %s"
                     % (r["idle_checkpoints_per_s"], r["idle_triggers"],
                        r["rr_triggers"],
                        " ".join("%s %.1f" % (k[:-3], v) for k, v in
                                 r["rr_split_ms"].items())))
        print(line, flush=True)
        lines.append(line)
    with open(os.path.join(OUT, "net_buffer.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(OUT, "net_buffer.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot(results, os.path.join(OUT, "net_buffer.png"))


if __name__ == "__main__":
    main()
