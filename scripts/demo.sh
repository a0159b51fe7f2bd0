#!/usr/bin/env bash
# make demo: see scripts/demo.py
set -euo pipefail
cd "$(dirname "$0")/.."
export COLO_BUILD_ROOT=${COLO_BUILD_ROOT:-$PWD/build}
exec python3 scripts/demo.py
