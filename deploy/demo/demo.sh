#!/usr/bin/env bash
# mifsec demo: an end user with a RAN and a WLAN link to a gateway.
# Creates two network namespaces joined by two veth links, starts mifsecd in
# the end user's namespace, registers both links through the CLI, flaps the
# WLAN link and prints what the watch stream delivered. Cleans up on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-$PWD/bin}
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (network namespaces)"; exit 1; }

tag=$$
UE=mifsec-demo-ue-$tag
GW=mifsec-demo-gw-$tag
WORK=$(mktemp -d /tmp/mifsec-demo.XXXXXX)
SOCK=$WORK/mifsec.sock
DPID=
WPID=

cleanup() {
  [ -n "$WPID" ] && kill "$WPID" 2>/dev/null || true
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null || true
  ip netns del "$UE" 2>/dev/null || true
  ip netns del "$GW" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
mifsec() { "$BIN/mifsec" --socket "$SOCK" "$@"; }

step "1. Topology: end user ($UE) with RAN and WLAN links to the gateway ($GW)"
ip netns add "$UE"; ip netns add "$GW"
ip -n "$UE" link set lo up; ip -n "$GW" link set lo up
ip link add dmr$tag type veth peer name dmrp$tag
ip link add dmw$tag type veth peer name dmwp$tag
ip link set dmr$tag netns "$UE" name ran0;   ip link set dmrp$tag netns "$GW" name ran0p
ip link set dmw$tag netns "$UE" name wlan0;  ip link set dmwp$tag netns "$GW" name wlan0p
ip -n "$UE" addr add 10.10.1.2/24 dev ran0;  ip -n "$GW" addr add 10.10.1.1/24 dev ran0p
ip -n "$UE" addr add 10.20.1.2/24 dev wlan0; ip -n "$GW" addr add 10.20.1.1/24 dev wlan0p
for l in ran0 wlan0; do ip -n "$UE" link set $l up; done
for l in ran0p wlan0p; do ip -n "$GW" link set $l up; done
ip -n "$UE" -br addr show | sed 's/^/   /'

step "2. Start mifsecd in the end user's namespace"
ip netns exec "$UE" "$BIN/mifsecd" --socket "$SOCK" --state-dir "$WORK/state" --log-level warn &
DPID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && mifsec interface list >/dev/null 2>&1 && break; sleep 0.1; done
echo "   mifsecd pid $DPID, API on $SOCK"

step "3. Watch events (snapshot, end-of-snapshot marker, then live)"
"$BIN/mifsec" --socket "$SOCK" watch > "$WORK/events.txt" 2>&1 &
WPID=$!
sleep 0.3

step "4. Register both links through the CLI"
mifsec interface add ran --link ran0 --access-type ran --priority 10 --metered
mifsec interface add wlan --link wlan0 --access-type wlan --priority 20
mifsec interface list

step "5. Flap the WLAN link"
ip -n "$UE" link set wlan0 down; echo "   wlan0 down"; sleep 0.5
mifsec interface get wlan
ip -n "$UE" link set wlan0 up;   echo "   wlan0 up";   sleep 0.5
ip -n "$UE" addr add 10.20.1.3/24 dev wlan0; echo "   wlan0 gained 10.20.1.3/24"; sleep 0.5

step "6. Events delivered by the watch stream"
kill "$WPID" 2>/dev/null || true; wait "$WPID" 2>/dev/null || true; WPID=
sed 's/^/   /' "$WORK/events.txt"
for want in INTERFACE_CREATED INTERFACE_LINK_DOWN INTERFACE_LINK_UP INTERFACE_ADDRESS_ADDED; do
  grep -qi "$want" "$WORK/events.txt" || { echo "demo: expected a $want event"; exit 1; }
done

step "Done: cleaning up namespaces and the daemon"
