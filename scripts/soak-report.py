#!/usr/bin/env python3
"""soak-report.py SOAK.jsonl: the table and plot of a cluster soak
(tests/functional/test_cluster_soak.py).  Prints the faults of each kind,
failovers, re-protections and each fault's figures, then per daemon the
RSS, fds and threads over the run: for every process that lived more
than 20 minutes, its RSS growth per hour after its first 10 minutes (a
least-squares slope), and the largest of those per daemon.  Draws
bench/out/soak.png (Debian's python3, for matplotlib)."""

import collections
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PNG = os.path.join(HERE, "..", "bench", "out", "soak.png")


def slope(points):
    """Least-squares slope of (t, value) points."""
    return statistics.linear_regression([t for t, _ in points],
                                        [v for _, v in points]).slope


def main(path):
    with open(path + ".summary.json") as f:
        summary = json.load(f)
    recs = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("t", -1) >= 0:
                recs.append(r)
    print("soak: %.2f h, %d faults: %s" % (
        summary["seconds"] / 3600.0, sum(summary["faults"].values()),
        ", ".join("%s %d" % kv for kv in summary["faults"].items())))
    print("failovers %d, re-protections %d" % (summary["failovers"],
                                              summary["reprotections"]))
    silences = [f["client_silence_s"] for f in summary["figures"]]
    if silences:
        print("client's longest silence per fault: median %.1f s, max %.1f s"
              % (sorted(silences)[len(silences) // 2], max(silences)))
    procs = collections.defaultdict(list)
    shm = collections.defaultdict(list)
    for r in recs:
        if r["daemon"] == "shm":
            shm[r["node"]].append((r["t"], r["ram_dir_bytes"],
                                   r["shm_bytes"]))
        else:
            procs[(r["daemon"], r["node"], r["pid"])].append(r)
    rows = collections.defaultdict(lambda: {"growth": None, "rss": [],
                                            "fds": [], "threads": []})
    for (daemon, _node, _pid), samples in procs.items():
        row = rows[daemon]
        row["rss"] += [s["rss_kb"] for s in samples]
        row["fds"] += [s["fds"] for s in samples]
        row["threads"] += [s["threads"] for s in samples]
        t0 = samples[0]["t"]
        late = [(s["t"] / 3600.0, s["rss_kb"] / 1024.0) for s in samples
                if s["t"] - t0 >= 600]
        if samples[-1]["t"] - t0 >= 1200 and len(late) >= 3:
            g = slope(late)
            if row["growth"] is None or g > row["growth"]:
                row["growth"] = g
    print("%-22s %10s %16s %10s %10s" % ("daemon", "RSS MiB", "growth MiB/h",
                                         "fds", "threads"))
    for daemon, row in sorted(rows.items()):
        print("%-22s %4.0f-%-5.0f %16s %4d-%-5d %4d-%-5d" % (
            daemon, min(row["rss"]) / 1024.0, max(row["rss"]) / 1024.0,
            "-" if row["growth"] is None else "%+.2f" % row["growth"],
            min(row["fds"]), max(row["fds"]), min(row["threads"]),
            max(row["threads"])))
    for node, pts in sorted(shm.items()):
        print("%s: RAM folder %.0f-%.0f MiB, /dev/shm %.0f-%.0f MiB" % (
            node, min(p[1] for p in pts) / 2 ** 20,
            max(p[1] for p in pts) / 2 ** 20,
            min(p[2] or 0 for p in pts) / 2 ** 20,
            max(p[2] or 0 for p in pts) / 2 ** 20))
    plot(procs, shm)


def plot(procs, shm):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    for (daemon, node, pid), samples in sorted(procs.items()):
        if not daemon.startswith(("colo-", "qemu", "corosync",
                                  "pacemaker-controld")):
            continue
        t = [s["t"] / 3600.0 for s in samples]
        label = "%s %s" % (daemon, node)
        axes[0].plot(t, [s["rss_kb"] / 1024.0 for s in samples], ".-",
                     markersize=2, linewidth=0.8, label=label)
        axes[1].plot(t, [s["fds"] for s in samples], ".-", markersize=2,
                     linewidth=0.8)
    for node, pts in sorted(shm.items()):
        axes[2].plot([p[0] / 3600.0 for p in pts],
                     [(p[2] or 0) / 2 ** 20 for p in pts], ".",
                     markersize=3, label="/dev/shm " + node)
    axes[0].set_ylabel("RSS (MiB)")
    axes[0].set_yscale("log")
    axes[1].set_ylabel("open fds")
    axes[2].set_ylabel("MiB")
    axes[2].set_xlabel("hours")
    handles, labels = axes[0].get_legend_handles_labels()
    seen = {}
    for h, lab in zip(handles, labels):
        seen.setdefault(lab, h)
    axes[0].legend(seen.values(), seen.keys(), fontsize=6, ncol=3)
    axes[2].legend(fontsize=7)
    fig.suptitle("cluster soak: every process of the nodes, per minute")
    fig.tight_layout()
    os.makedirs(os.path.dirname(PNG), exist_ok=True)
    fig.savefig(PNG)
    print("plot: " + os.path.normpath(PNG))


if __name__ == "__main__":
    main(sys.argv[1])
