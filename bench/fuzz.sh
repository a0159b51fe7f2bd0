#!/usr/bin/env bash
# bench/fuzz.sh [SECONDS] [FUZZER...]: runs each libFuzzer harness for
# SECONDS (default 120) on its corpus (bench/out/fuzz/<name>, seeded by
# tests/fuzz/make-seeds.py).  Builds build-fuzz with clang if needed.
# Exit status 1 if any harness found a crash (artifacts in bench/out/fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-120}
shift || true
fuzzers=${*:-fuzz-stream fuzz-colo fuzz-xbzrle fuzz-qmp fuzz-nbd}
if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined \
        -Db_lundef=false -Dslow_tests=false >/dev/null
fi
# quiet unless it fails
ninja -C build-fuzz >/dev/null || ninja -C build-fuzz
out=bench/out/fuzz
mkdir -p "$out/seeds"
python3 tests/fuzz/make-seeds.py "$out/seeds"
status=0
# Inputs as large as the ones that matter (a stream with a 0.5 MB
# VMDESCRIPTION, a QMP line nested past 1024), and the wire tokens.
fuzz_flags() {
    case "$1" in
    fuzz-stream|fuzz-colo) echo "-max_len=1048576 -dict=tests/fuzz/stream.dict" ;;
    fuzz-qmp) echo "-max_len=131072 -dict=tests/fuzz/qmp.dict" ;;
    fuzz-nbd) echo "-max_len=65536 -dict=tests/fuzz/nbd.dict" ;;
    *) echo "-max_len=16384" ;;
    esac
}
for f in $fuzzers; do
    mkdir -p "$out/$f" "$out/$f-artifacts"
    echo "== $f for ${secs}s"
    if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 \
        build-fuzz/tests/fuzz/$f -max_total_time="$secs" -rss_limit_mb=4096 \
        -timeout=10 -print_final_stats=1 -seed="${FUZZ_SEED:-0}" \
        $(fuzz_flags "$f") \
        -artifact_prefix="$out/$f-artifacts/" "$out/$f" "$out/seeds/$f" \
        $(ls -d tests/fuzz/regressions 2>/dev/null) \
        > "$out/$f.log" 2>&1; then
        echo "   CRASH: see $out/$f.log and $out/$f-artifacts/"
        status=1
    fi
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|Done " "$out/$f.log" | sed 's/^/   /' || true
    echo "   corpus: $(ls "$out/$f" | wc -l) files"
done
exit $status
