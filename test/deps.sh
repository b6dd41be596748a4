#!/usr/bin/env bash
# Installs the Debian packages the tests need, when they are missing.
# Run as root on a fresh machine (CI does, through make test).
set -euo pipefail
pkgs=(
  iproute2 iperf3 iputils-ping nftables procps   # namespaces, traffic, packet loss
  strongswan-charon strongswan-swanctl           # the interop peer (kernel-libipsec)
  libcharon-extra-plugins libstrongswan-extra-plugins libstrongswan-standard-plugins
  qemu-system-x86 busybox-static kmod cpio    # kernel XFRM tests in a VM
  systemd                                     # systemd-analyze verify of deploy/
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages ${missing[*]}; run as root to install them" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The packaged charon must not run as a system service during tests: the
# tests start their own instances in namespaces.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now strongswan-starter strongswan 2>/dev/null || true
fi
