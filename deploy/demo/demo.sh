#!/usr/bin/env bash
# mifsec demo: an end user with a RAN and a WLAN link to a gateway, a
# server behind the gateway, two mifsecd (end user and gateway) in network
# namespaces. The tunnel rises on both links (one IKE SA per path); a
# video-like flow is steered to WLAN and a voice-like flow to RAN; WLAN is
# lost and comes back; an orchestrator (deploy/examples/steer-flow.sh, a
# grpcurl script) moves video back. Every step prints what moved (from
# the end user's watch stream) and what each flow lost, with the ESP each
# link sent (counted on the wire). Needs root, iproute2, bin/ (make build)
# and Go (it builds the traffic tool, bench/cmd/mobility); grpcurl is taken
# from PATH or .tools/bin, or installed there. Cleans up on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${BIN:-$ROOT/bin}
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (network namespaces)"; exit 1; }
for b in mifsecd mifsec; do [ -x "$BIN/$b" ] || { echo "demo: $BIN/$b missing (make build)"; exit 1; }; done
command -v ip >/dev/null || { echo "demo: needs iproute2"; exit 1; }

tag=$$
UE=mifsec-demo-ue-$tag
GW=mifsec-demo-gw-$tag
SRV=mifsec-demo-srv-$tag
WORK=$(mktemp -d /tmp/mifsec-demo.XXXXXX)
PIDS=()
FLOW_PID=

cleanup() {
  set +e
  if [ -n "$FLOW_PID" ]; then kill "$FLOW_PID" 2>/dev/null; wait "$FLOW_PID" 2>/dev/null; fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  for ns in "$UE" "$GW" "$SRV"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

T0=$(date +%s.%N)
step() { printf '\n\033[1m[%5.1fs] %s\033[0m\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" "$*"; }
ue() { "$BIN/mifsec" --socket "$WORK/ue.sock" "$@"; }
gw() { "$BIN/mifsec" --socket "$WORK/gw.sock" "$@"; }
indent() { sed 's/^/   /'; }

# events: the end user's watch lines since the last call, the interesting
# kinds only (moves, failovers, announcements, links, paths, rules).
EV_SEEN=0
events() {
  local n
  n=$(wc -l <"$WORK/events.txt")
  tail -n +"$((EV_SEEN + 1))" "$WORK/events.txt" | head -n "$((n - EV_SEEN))" |
    grep -iE ' (interface_link_(up|down)|path_(up|down)|flows_moved|ike_sa_(up|migrated)|addresses_announced|peer_addresses|steering_rule_[a-z]+) ' |
    sed -E 's/^[0-9]+ [^ ]+ /   event: /' || true
  EV_SEEN=$n
}

# report LABEL: each flow's datagrams since the last report (lost,
# duplicated, reordered) and the ESP each end-user link sent meanwhile.
report() {
  echo "report $1" >&"${FLOW[1]}"
  local line
  while IFS= read -r line <&"${FLOW[0]}"; do
    [ "$line" = "." ] && break
    echo " $line"
  done
}

step "1. Topology: end user ($UE) --RAN/WLAN-- gateway ($GW) --LAN-- server ($SRV)"
for ns in "$UE" "$GW" "$SRV"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
veth() { # veth NS_A ADDR_A NS_B ADDR_B NAME: one link, the same name on both ends
  ip link add "$5" netns "$1" type veth peer name "$5" netns "$3"
  ip -n "$1" addr add "$2" dev "$5"; ip -n "$3" addr add "$4" dev "$5"
  ip -n "$1" link set "$5" up; ip -n "$3" link set "$5" up
}
veth "$UE" 198.51.100.2/24 "$GW" 198.51.100.1/24 ran0
veth "$UE" 203.0.113.2/24 "$GW" 203.0.113.1/24 wlan0
veth "$SRV" 192.0.2.10/24 "$GW" 192.0.2.1/24 lan0
ip netns exec "$GW" sysctl -qw net.ipv4.ip_forward=1
ip -n "$SRV" route add default via 192.0.2.1
echo "   end user: ran0 198.51.100.2, wlan0 203.0.113.2 (no default route: each link reaches only its own gateway address)"
echo "   gateway:  ran0 198.51.100.1, wlan0 203.0.113.1, lan0 192.0.2.1;  server: 192.0.2.10"

step "2. Start mifsecd on the gateway and on the end user (userspace data plane); build the traffic tool"
for who in gw ue; do
  ns=$GW; [ $who = ue ] && ns=$UE
  ip netns exec "$ns" "$BIN/mifsecd" --socket "$WORK/$who.sock" --state-dir "$WORK/$who-state" \
    --dataplane userspace --log-level warn >"$WORK/$who.log" 2>&1 &
  PIDS+=($!)
done
go build -o "$WORK/mobility" ./bench/cmd/mobility
GRPCURL=${GRPCURL:-$(command -v grpcurl || true)}
if [ -z "$GRPCURL" ]; then
  GRPCURL=$ROOT/.tools/bin/grpcurl
  if [ ! -x "$GRPCURL" ]; then
    v=$(sed -n 's/^GRPCURL_VERSION *:= *//p' Makefile)
    echo "   installing grpcurl $v into .tools/bin (as make tools does)"
    GOBIN=$ROOT/.tools/bin go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$v"
  fi
fi
for who in gw ue; do
  for _ in $(seq 100); do "$BIN/mifsec" --socket "$WORK/$who.sock" interface list >/dev/null 2>&1 && break; sleep 0.1; done
done
echo "   both daemons serve their API; traffic tool and grpcurl ready"

step "3. Configure both ends through the CLI"
for m in gw ue; do
  $m interface add ran --link ran0 --access-type ran --priority 10 --metered >/dev/null
  $m interface add wlan --link wlan0 --access-type wlan --priority 20 >/dev/null
  echo "demo-psk-0123456789abcdef" | $m secret add psk --type psk --value-stdin >/dev/null
done
gw pool add ue --range 10.45.0.0/24 >/dev/null
gw connection add ues --role responder --psk psk --local-id @gw.example.net --remote-id ue1@example.net \
  --pool ue --child net,local=192.0.2.0/24 >/dev/null
ue connection add gw --role initiator --psk psk --local-id ue1@example.net --remote-id @gw.example.net \
  --remote 203.0.113.1 --remote 198.51.100.1 --interface ran,wlan --multipath --virtual-ip4 \
  --child net,remote=192.0.2.0/24 >/dev/null
echo "   gateway: pool 10.45.0.0/24, responder 'ues' for the LAN 192.0.2.0/24"
echo "   end user: initiator 'gw', multipath over ran and wlan, asks for an inner address"
"$BIN/mifsec" --socket "$WORK/ue.sock" watch >"$WORK/events.txt" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -qi end_of_snapshot "$WORK/events.txt" 2>/dev/null && break; sleep 0.1; done
EV_SEEN=$(wc -l <"$WORK/events.txt")

step "4. The tunnel rises on both links (one IKE SA per path, the same inner address)"
ue connection initiate gw >/dev/null
for _ in $(seq 100); do
  [ "$(ue connection paths gw 2>/dev/null | grep -c ' up ' || true)" -ge 2 ] && break; sleep 0.1
done
ue connection paths gw | indent
VIP=$(ue sa list gw --json | sed -n 's/.*"virtualIps": *\[ *"\([0-9.]*\)".*/\1/p; s/^ *"\([0-9.]*\)"$/\1/p' | head -n 1)
[ -n "$VIP" ] || { echo "demo: no inner address"; ue sa list gw; exit 1; }
echo "   inner address $VIP"
events

step "5. Steer video (UDP 7302) to WLAN and voice (UDP 7301) to RAN; start both flows"
ue steering add video --mode active-standby --target wlan --target ran --protocol udp --dport 7302 --probe-interval 100ms >/dev/null
ue steering add voice --mode active-standby --target ran --target wlan --protocol udp --dport 7301 --probe-interval 100ms >/dev/null
coproc FLOW { exec "$WORK/mobility" flow --from "$UE" --to "$SRV" --src "$VIP" --dst 192.0.2.10 \
  --flow voice:7301:50:160 --flow video:7302:1000:1200 --links ran0,wlan0; }
FLOW_PID=$FLOW_PID
sleep 3
events
report both-links

step "6. WLAN lost (ip link set wlan0 down): video fails over to RAN, voice stays"
ip -n "$UE" link set wlan0 down
sleep 3
events
report wlan-lost

step "7. WLAN recovers: the paths come back up, the flows stay where they are (active-standby)"
ip -n "$UE" link set wlan0 up
sleep 3
events
report wlan-back

step "8. The orchestrator moves video back to WLAN (deploy/examples/steer-flow.sh, grpcurl)"
echo "   \$ MIFSEC_SOCKET=$WORK/ue.sock deploy/examples/steer-flow.sh video 7302 wlan ran"
MIFSEC_SOCKET=$WORK/ue.sock GRPCURL=$GRPCURL deploy/examples/steer-flow.sh video 7302 wlan ran |
  grep -E '"(name|activePaths)"|connections/' | indent
sleep 2
events
report moved-back

step "9. Paths and their traffic at the end"
ue connection paths gw | indent
step "Done: stopping the daemons, removing the namespaces"
