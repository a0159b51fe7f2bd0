#!/usr/bin/env python3
"""test-summary.py BUILDDIR|LOG.json...: reads each build's
meson-logs/testlog.json (or the meson test log named)
and prints one line per test that did not pass (with the reasons a skipped
test gave), then 'N passed, N failed, N skipped'.  Exit status 1 if any
test failed, was skipped or timed out, or a log is missing: a skip means
a prerequisite is missing, and a suite that did not run is no pass."""

import json
import os
import sys


def main(builds):
    ok = bad = skip = 0
    for build in builds:
        # a build folder, or one meson test log (make check-cluster's)
        log = build if build.endswith(".json") else \
            os.path.join(build, "meson-logs", "testlog.json")
        try:
            with open(log) as f:
                results = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            print("test-summary: %s is missing (the suite did not run)"
                  % log, file=sys.stderr)
            bad += 1
            continue
        for r in results:
            res = r["result"]
            if res in ("OK", "EXPECTEDFAIL"):
                ok += 1
                continue
            out = (r.get("stdout") or "") + (r.get("stderr") or "")
            reasons = [line for line in out.splitlines()
                       if line.startswith("SKIP")]
            if res == "SKIP":
                skip += 1
            else:
                bad += 1
            print("test-summary: %s: %s%s" % (
                r["name"], res, "".join("\n    " + x for x in reasons)),
                file=sys.stderr)
    print("%d passed, %d failed, %d skipped" % (ok, bad, skip))
    return 1 if bad or skip else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["build"]))
