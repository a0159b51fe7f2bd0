#!/usr/bin/env bash
# tools/lint.sh [BUILDDIR]: cppcheck and clang-tidy (.clang-tidy) over the
# project's own C code, no include circle between its modules, pyflakes
# over its Python; any finding is an error.  Needs a configured build
# directory for compile_commands.json (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
files=$(ls migration/*.c monitor/*.c system/*.c util/*.c tools/*.c tools/*/*.c tests/unit/*.c \
    bench/*.c)
status=0
echo "== cppcheck"
cppcheck --project="$build/compile_commands.json" --library=gtk \
    --enable=warning,performance,portability --inline-suppr \
    --error-exitcode=1 --suppress=missingIncludeSystem \
    --suppress='*:/usr/*' -i "$build" --quiet || status=1
echo "== clang-tidy"
for f in $files; do
    clang-tidy -p "$build" --quiet --extra-arg=-Wno-unknown-warning-option \
        "$f" 2>/dev/null || status=1
done
echo "== include circles"
/usr/bin/python3 scripts/include-cycles.py || status=1
echo "== pyflakes"
/usr/bin/python3 -m pyflakes tests/functional tests/fuzz/*.py bench/*.py \
    scripts/*.py tests/unit/*.py tools/ocf/colo tools/ocf/colo_ocf || status=1
[ $status -eq 0 ] && echo "lint: clean"
exit $status
