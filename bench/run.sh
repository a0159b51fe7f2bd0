#!/usr/bin/env bash
# bench/run.sh: run the benchmarks; figures on stdout, text and PNG plots
# in bench/out/.  Debian's python3 (for python3-matplotlib).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
export COLO_BUILD_ROOT=${COLO_BUILD_ROOT:-$PWD/build}
export COLO_SECONDARY=${COLO_SECONDARY:-$COLO_BUILD_ROOT/colo-secondary}
what=${1:-all}
case "$what" in
load) "$PY" bench/load_speed.py ;;
colo) "$PY" bench/colo_commit.py ;;
primary) "$PY" bench/colo_primary.py ;;
failover) "$PY" bench/failover.py ;;
net) "$PY" bench/net_buffer.py ;;
tls) "$PY" bench/tls.py ;;
pause) "$PY" bench/pause_linux.py ;;
soft-dirty) "$PY" bench/soft_dirty_vm.py ;;
disk) "$PY" bench/disk.py ;;
nbd) "$PY" bench/nbd_latency.py ;;
libvirt) "$PY" bench/libvirt.py ;;
bad-link) "$PY" bench/bad_link.py ;;
density) "$PY" bench/density.py ;;
long-session) "$PY" bench/long_session.py ;;
fuzz) bash bench/fuzz.sh "${FUZZ_SECONDS:-120}" ;;
all) "$PY" bench/load_speed.py; "$PY" bench/colo_commit.py
     "$PY" bench/colo_primary.py; "$PY" bench/failover.py
     "$PY" bench/net_buffer.py; "$PY" bench/tls.py
     "$PY" bench/pause_linux.py; "$PY" bench/soft_dirty_vm.py
     "$PY" bench/disk.py; "$PY" bench/nbd_latency.py
     "$PY" bench/libvirt.py; "$PY" bench/bad_link.py
     "$PY" bench/density.py; "$PY" bench/long_session.py ;;
esac
