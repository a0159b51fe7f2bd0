#!/usr/bin/env bash
# Install everything colo-standby needs on Debian 12 (bookworm):
# build tools and libraries from bookworm, QEMU 10.0 from bookworm-backports,
# and QEMU 7.2 unpacked side by side under build/qemu-7.2 for interop tests.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

need_pkgs="build-essential meson ninja-build pkg-config libglib2.0-dev libjson-glib-dev zlib1g-dev libgnutls28-dev openssl
           python3 clang llvm libclang-rt-14-dev clang-tidy cppcheck nasm xxd procps iproute2 python3-matplotlib cpio
           python3-pyflakes pacemaker pacemaker-cli-utils corosync resource-agents libxml2-utils
           libvirt-dev libxml2-dev libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
           help2man debhelper lintian"

bpo=/etc/apt/sources.list.d/colo-standby-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    $SUDO tee "$bpo" >/dev/null <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO apt-get update -qq
fi

missing=""
for p in $need_pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    [ -n "${APT_UPDATED:-}" ] || $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq $missing
fi

# QEMU 10.0 (bookworm-backports) is the system qemu-system-x86_64.
if ! qemu-system-x86_64 --version 2>/dev/null | grep -q 'version 10\.'; then
    $SUDO apt-get install -y -qq -t bookworm-backports qemu-system-x86 qemu-utils
fi

# QEMU 7.2 (bookworm) unpacked into build/qemu-7.2, run with -L and
# QEMU_MODULE_DIR (see tests/functional/qemu.py).
q72="$top/build/qemu-7.2"
if [ ! -x "$q72/usr/bin/qemu-system-x86_64" ]; then
    tmp=$(mktemp -d); chmod 1777 "$tmp"   # apt downloads as _apt
    for pkg in qemu-system-x86 qemu-system-data qemu-system-common; do
        ver=$(apt-cache madison "$pkg" | awk '$3 ~ /^1:7\.2/ && !v {v = $3} END {print v}')
        if [ -z "$ver" ]; then
            echo "install-deps: no $pkg 7.2 in the apt sources" >&2
            exit 1
        fi
        (cd "$tmp" && apt-get download -qq "$pkg=$ver")
    done
    mkdir -p "$q72"
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$q72"; done
    rm -rf "$tmp"
fi
echo "install-deps: ok"
