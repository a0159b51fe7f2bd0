#!/usr/bin/env bash
# scripts/build-guest.sh [OUT]: builds the real Linux guest the tests, the
# benchmarks and the demo boot: Debian's cloud kernel (virtio as modules)
# and a busybox initramfs, from Debian packages fetched with apt-get
# download.  Writes OUT/vmlinuz, OUT/initramfs.cpio.gz and OUT/VERSION
# (default OUT: build/linux-guest).  Nothing is rebuilt while OUT/VERSION
# names the same packages and the guest's files are unchanged.
#
# The guest's /init (tests/guest/linux/init) loads the virtio modules and
# runs the workload named by colo.run=NAME on the kernel command line
# (tests/guest/linux/run-NAME), else a shell on the console.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/linux-guest}
guest_src=$top/tests/guest/linux

kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
       awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kpkg" ]; then
    echo "build-guest: no linux-image-cloud-amd64 in the apt sources" \
         "(apt-get update?)" >&2
    exit 1
fi
bbver=$(apt-cache policy busybox-static | awk '/Candidate:/ {print $2}')
stamp="$kpkg busybox-static=$bbver $(cat "$guest_src"/* | sha256sum | cut -c1-16)"
if [ -f "$out/VERSION" ] && [ "$(cat "$out/VERSION")" = "$stamp" ] &&
   [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.cpio.gz" ]; then
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 1777 "$tmp"           # apt downloads as _apt
(cd "$tmp" && apt-get download -qq "$kpkg" busybox-static)
mkdir "$tmp/x"
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
kver=${kpkg#linux-image-}
moddir="$tmp/x/lib/modules/$kver/kernel"

root="$tmp/root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules,guest,mnt}
cp "$tmp/x/bin/busybox" "$root/bin/busybox"
# every applet as a relative link to busybox, all in /bin
for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
for m in virtio/virtio_ring virtio/virtio virtio/virtio_pci_legacy_dev \
         virtio/virtio_pci_modern_dev virtio/virtio_pci; do
    cp "$moddir/drivers/$m.ko" "$root/lib/modules/"
done
cp "$moddir/net/core/failover.ko" "$moddir/drivers/net/net_failover.ko" \
   "$moddir/drivers/net/virtio_net.ko" "$moddir/drivers/block/virtio_blk.ko" \
   "$root/lib/modules/"
install -m 0755 "$guest_src/init" "$root/init"
for f in "$guest_src"/run-*; do
    [ -e "$f" ] && install -m 0755 "$f" "$root/guest/${f##*/run-}"
done

# the UDP burst of the network buffer's limit test, static for busybox
gcc -O2 -static -o "$root/bin/udpflood" "$guest_src/udpflood.c"
# the disk tests' writer and checker, and the disk benchmark
gcc -O2 -static -o "$root/bin/diskcheck" "$guest_src/diskcheck.c"
# the benchmark's compute loop (the CPU checkpoints leave the guest)
gcc -O2 -static -o "$root/bin/spin" "$guest_src/spin.c"
# the soak's memory writer and checker (colo.memwrite=MIB:RATE)
gcc -O2 -static -o "$root/bin/memwrite" "$guest_src/memwrite.c"

mkdir -p "$out"
cp "$tmp/x/boot/vmlinuz-$kver" "$out/vmlinuz"
(cd "$root" && find . | cpio --quiet -o -H newc -R 0:0) | gzip -9 \
    > "$out/initramfs.cpio.gz"
echo "$stamp" > "$out/VERSION"
echo "build-guest: $out ($kpkg, busybox-static $bbver)"
