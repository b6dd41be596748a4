#!/bin/bash
# Build the test VM: Debian's stock kernel (the linux-image-6.1.*-amd64 package
# that linux-image-amd64 points to, downloaded and unpacked, never installed)
# and a busybox initramfs that loads the XFRM/ESP, veth and 9p modules.
#
# Usage: build-initramfs.sh CACHE_DIR
# Output: CACHE_DIR/vmlinuz, CACHE_DIR/initrd.gz (rebuilt only when an input changed).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${1:?usage: build-initramfs.sh CACHE_DIR}
mkdir -p "$CACHE"
export DEBIAN_FRONTEND=noninteractive

# 1. Host tools.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
# busybox-static's /bin/busybox: ldd fails on a static binary.
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
command -v depmod >/dev/null || need+=(kmod)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
	echo "vm: installing ${need[*]}"
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

# 2. The kernel package linux-image-amd64 depends on, e.g. linux-image-6.1.0-56-amd64.
resolve() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-6\.1\.[0-9.-]*-amd64\)$/\1/p' | head -n1; }
KPKG=${MIFSEC_VM_KPKG:-$(resolve)}
if [ -z "$KPKG" ]; then apt-get update -q >/dev/null; KPKG=$(resolve); fi
[ -n "$KPKG" ] || { echo "vm: cannot resolve the linux-image-6.1.*-amd64 package behind linux-image-amd64" >&2; exit 1; }
KVER=${KPKG#linux-image-}
mkdir -p "$CACHE/deb"
if ! ls "$CACHE/deb/${KPKG}"_*.deb >/dev/null 2>&1; then
	echo "vm: downloading $KPKG ($(apt-cache show "$KPKG" 2>/dev/null | sed -n 's/^Version: //p' | head -n1))"
	(cd "$CACHE/deb" && apt-get download -q "$KPKG" 2>&1 | grep -v 'unsandboxed' || true)
fi
DEB=$(ls "$CACHE/deb/${KPKG}"_*.deb | head -n1)
KROOT=$CACHE/kernel-$KVER
if [ ! -f "$KROOT/lib/modules/$KVER/modules.dep" ]; then
	rm -rf "$KROOT"
	dpkg -x "$DEB" "$KROOT"
	depmod -b "$KROOT" "$KVER"
fi

# Rebuild only when the kernel, this script or the init changed.
stamp=$( (echo "$KVER"; cat "$0" "$HERE/guest/init") | sha256sum | cut -c1-16)
if [ -f "$CACHE/initrd.gz" ] && [ "$(cat "$CACHE/initrd.stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "vm: kernel $KVER, initramfs up to date"
	exit 0
fi

# 3. Stage the root file system.
R=$CACHE/root
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,etc,proc,sys,dev,run,tmp,mnt/host,lib/modules/"$KVER"}
cp /bin/busybox "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done
# The kernel runs /sbin/modprobe to autoload crypto templates (crypto-ecb, ...).
ln -sf ../bin/busybox "$R/sbin/modprobe"

# Modules loaded at boot (with their dependencies). Debian builds XFRM, AES,
# CBC, HMAC and SHA1/2 in; ESP, GCM, ChaCha20-Poly1305 and their helpers are
# modules. seqiv/echainiv need ecb (for ecb(cipher_null)) and drbg (stdrng).
MODULES=(
	ecb drbg jitterentropy_rng gf128mul ghash-generic ctr gcm seqiv echainiv authenc
	chacha_generic poly1305_generic chacha20poly1305
	xfrm_algo xfrm_user esp4 esp6 tunnel4 tunnel6 xfrm4_tunnel xfrm6_tunnel xfrm_interface
	veth dummy
	virtio_pci 9pnet_virtio 9p
)
copy_mod() { # copy a module and its dependencies into the root
	modprobe -d "$KROOT" -S "$KVER" --show-depends "$1" 2>/dev/null | awk '$1 == "insmod" {print $2}' | while read -r ko; do
		rel=${ko#"$KROOT"/}
		[ -f "$R/$rel" ] || { mkdir -p "$R/$(dirname "$rel")"; cp "$ko" "$R/$rel"; }
	done
}
: >"$R/etc/modules"
for m in "${MODULES[@]}"; do
	copy_mod "$m"
	echo "$m" >>"$R/etc/modules"
done
# Every crypto module too, so that on-demand algorithm loading works.
for d in kernel/crypto kernel/arch/x86/crypto; do
	for ko in "$KROOT/lib/modules/$KVER/$d"/*.ko; do copy_mod "$(basename "$ko" .ko)"; done
done
cp "$KROOT/lib/modules/$KVER"/modules.{builtin,builtin.modinfo,order} "$R/lib/modules/$KVER/"
depmod -b "$R" "$KVER"

install -m 0755 "$HERE/guest/init" "$R/init"
cp "$KROOT/boot/vmlinuz-$KVER" "$CACHE/vmlinuz"
(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -6 >"$CACHE/initrd.gz.new")
mv "$CACHE/initrd.gz.new" "$CACHE/initrd.gz"
echo "$stamp" >"$CACHE/initrd.stamp"
rm -rf "$R"
echo "vm: kernel $KVER; initrd $(du -h "$CACHE/initrd.gz" | cut -f1), $(gzip -dc "$CACHE/initrd.gz" | cpio -t --quiet 2>/dev/null | grep -c '\.ko$') modules"
