#!/usr/bin/env bash
# make deb: builds colo-standby_VERSION_amd64.deb from this tree with
# dpkg-buildpackage (debian/), in a copy under OUT so the tree stays as
# it is, then runs lintian on it: an error fails, its other findings are
# printed.  Usage: build-deb.sh OUT
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
src="$out/colo-standby-$version"

rm -rf "$src" "$out"/colo-standby_*
# lintian (and the build) leave files in $TMPDIR: a folder of our own
TMPDIR=$(mktemp -d "$out/tmp.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
mkdir -p "$src"
# what git knows of (a clean clone: everything), without the build trees
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
     grep -zv '^build' | xargs -0 tar -cf - --) | tar -xf - -C "$src"
(cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc)" \
     dpkg-buildpackage -b -us -uc) > "$out/build.log" 2>&1 || {
    tail -40 "$out/build.log" >&2
    echo "build-deb: dpkg-buildpackage failed (log: $out/build.log)" >&2
    exit 1
}
rm -rf "$src"
deb="$out/colo-standby_${version}_amd64.deb"
echo "build-deb: $deb"
# lintian: errors fail the build; warnings and infos are shown
lintian --fail-on error --display-info --allow-root "$out"/colo-standby_*.changes
echo "build-deb: lintian found no errors"
