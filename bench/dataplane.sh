#!/bin/bash
# bench/dataplane.sh [REPS] - single-stream iperf3 TCP throughput and CPU per GB
# between two network namespaces, over
#   raw    the veth pair alone
#   mifsec the mifsec userspace data plane, AES-128-GCM, ESP-in-UDP
#          (engine/dataplane/userspace/cmd/mifsec-dpbench, fixed keys)
#   wg     wireguard-go (pinned below) configured with wg(8)
#   ss     strongSwan 5.9 charon with kernel-libipsec (userspace ESP-in-UDP),
#          IKEv2 PSK, ESP aes128gcm16
# Every rep runs each path once, in turn (round robin), so ratios are taken
# rep by rep within one run on this noisy shared machine.
#
# Needs root, ip, iperf3, go, python3; wg needs wireguard-tools; ss needs
# strongswan-charon strongswan-swanctl libcharon-extra-plugins
# libstrongswan-extra-plugins. A path whose tools are missing is skipped.
# Environment: REPS (3), T seconds per test (10), CFGS ("raw mifsec wg ss"),
# WORK (/tmp/mifsec-bench), MIFSEC_FLAGS (extra mifsec-dpbench flags).
# Tunnel MTU is 1400 everywhere (kernel-libipsec sizes its TUN reads from
# the MTU it sets; changing it breaks TCP through it), underlay MTU 1500.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
. "$HERE/lib.sh"

REPS=${1:-${REPS:-3}}
T=${T:-10}
CFGS=${CFGS:-"raw mifsec wg ss"}
WORK=${WORK:-/tmp/mifsec-bench}
WG_VERSION=v0.0.0-20260522210424-ecfc5a8d5446 # wireguard-go, 2026-05-22
BIN=$WORK/bin
RES=$WORK/results-$(date +%Y%m%d-%H%M%S)
TCK=$(getconf CLK_TCK)
P=$BENCH_NS_PREFIX
export PATH=/usr/local/go/bin:$PATH

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in ip iperf3 go python3; do need $t "required" || exit 1; done
mkdir -p "$BIN" "$RES"

# ---------------------------------------------------------------- build
have=""
for c in $CFGS; do
  case $c in
    raw) have="$have raw" ;;
    mifsec)
      (cd "$ROOT" && go build -o "$BIN/mifsec-dpbench" ./engine/dataplane/userspace/cmd/mifsec-dpbench) \
        && have="$have mifsec" || echo "skip mifsec: build failed" >&2 ;;
    wg)
      if need wg "apt install wireguard-tools"; then
        [ -x "$BIN/wireguard" ] || (cd "$WORK" && GOBIN=$BIN GOFLAGS= go install "golang.zx2c4.com/wireguard@$WG_VERSION")
        [ -x "$BIN/wireguard" ] && have="$have wg" || echo "skip wg: wireguard-go build failed" >&2
      fi ;;
    ss)
      if [ -x /usr/lib/ipsec/charon ] && need swanctl "apt install strongswan-swanctl"; then have="$have ss"
      else echo "skip ss: needs /usr/lib/ipsec/charon and swanctl (strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins)" >&2; fi ;;
    *) echo "unknown config $c" >&2; exit 1 ;;
  esac
done
CFGS=$have

# Per path i: underlay 198.18.(10+i).1/.2, inner 198.19.(2i).1 -> 198.19.(2i+1).1
idx() { case $1 in raw) echo 0;; mifsec) echo 1;; wg) echo 2;; ss) echo 3;; esac; }
under() { echo 198.18.$((10 + $(idx $1))).$2; }
inner() { echo 198.19.$((2 * $(idx $1) + $2 - 1)).1; }
dst() { [ $1 = raw ] && under raw 2 || inner $1 2; }

PIDS=()        # every process we started
declare -A TPIDS # tunnel processes per path
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for c in raw mifsec wg ss; do delpair $P-$c-a $P-$c-b; done
}
trap cleanup EXIT

iperf_server() { # ns addr
  ip netns exec "$1" iperf3 -s -B "$2" >/dev/null 2>&1 &
  PIDS+=($!)
}

up_raw() {
  mkpair $P-raw-a $P-raw-b "$(under raw 1)/24" "$(under raw 2)/24"
  iperf_server $P-raw-b "$(under raw 2)"
}

up_mifsec() {
  mkpair $P-mifsec-a $P-mifsec-b "$(under mifsec 1)/24" "$(under mifsec 2)/24"
  local s me peer
  for s in a b; do
    me=1; peer=2; [ $s = b ] && { me=2; peer=1; }
    ip netns exec $P-mifsec-$s "$BIN/mifsec-dpbench" -side $s -tun ${P}t -mtu 1400 \
      -local "$(under mifsec $me)" -remote "$(under mifsec $peer)" \
      -addr "$(inner mifsec $me)/24" -route "$(inner mifsec $peer | sed 's/\.1$/.0/')/24" ${MIFSEC_FLAGS:-} \
      2>"$RES/mifsec-$s.log" &
    PIDS+=($!); TPIDS[mifsec]="${TPIDS[mifsec]:-} $!"
    waitfor 10 grep -q ready "$RES/mifsec-$s.log" || { echo "mifsec-dpbench $s did not start:"; cat "$RES/mifsec-$s.log"; return 1; }
  done
  iperf_server $P-mifsec-b "$(inner mifsec 2)"
}

up_wg() {
  mkpair $P-wg-a $P-wg-b "$(under wg 1)/24" "$(under wg 2)/24"
  local s me peer ps
  mkdir -p "$WORK/wg"
  for s in a b; do (umask 077; wg genkey >"$WORK/wg/$s.key"; wg pubkey <"$WORK/wg/$s.key" >"$WORK/wg/$s.pub"); done
  for s in a b; do
    me=1; peer=2; ps=b; [ $s = b ] && { me=2; peer=1; ps=a; }
    LOG_LEVEL=error ip netns exec $P-wg-$s "$BIN/wireguard" -f ${P}w$s >"$RES/wg-$s.log" 2>&1 &
    PIDS+=($!); TPIDS[wg]="${TPIDS[wg]:-} $!"
    waitfor 10 test -S /var/run/wireguard/${P}w$s.sock || { echo "wireguard-go $s did not start"; return 1; }
    ip netns exec $P-wg-$s wg set ${P}w$s listen-port 51820 private-key "$WORK/wg/$s.key" \
      peer "$(cat "$WORK/wg/$ps.pub")" endpoint "$(under wg $peer):51820" allowed-ips "$(inner wg $peer)/32"
    ip -n $P-wg-$s addr add "$(inner wg $me)/24" dev ${P}w$s
    ip -n $P-wg-$s link set ${P}w$s mtu 1400 up
    ip -n $P-wg-$s route add "$(inner wg $peer)/32" dev ${P}w$s
  done
  iperf_server $P-wg-b "$(inner wg 2)"
}

ss_conf() { # a|b
  local s=$1 d=$WORK/ss/$1 me=1 peer=2 start=start
  [ $s = b ] && { me=2; peer=1; start=none; }
  mkdir -p "$d/run"
  cat >"$d/strongswan.conf" <<EOC
charon {
  load = random nonce openssl aes sha1 sha2 hmac gcm aesni curve25519 kdf pem pkcs1 pubkey x509 kernel-libipsec kernel-netlink socket-default vici
  port = 500
  port_nat_t = 4500
  install_routes = yes
  plugins { vici { socket = unix://$d/charon.vici } }
  filelog { bench { path = $d/charon.log
                    default = ${SSLOG:-0} } }
  syslog { daemon { default = -1 } }
}
EOC
  cat >"$d/swanctl.conf" <<EOC
connections {
  bench {
    version = 2
    local_addrs = $(under ss $me)
    remote_addrs = $(under ss $peer)
    proposals = aes128gcm16-prfsha256-x25519
    encap = yes
    local { auth = psk
            id = $s.bench }
    remote { auth = psk }
    children {
      bench { local_ts = $(inner ss $me)/32
              remote_ts = $(inner ss $peer)/32
              esp_proposals = aes128gcm16
              start_action = $start }
    }
  }
}
secrets { ike-bench { secret = "bench-only-psk-0123456789abcdef" } }
EOC
}

start_charon() { # a|b ; charon's pid file is /var/run/charon.pid: give it a private /run
  local s=$1 d=$WORK/ss/$1
  ip netns exec $P-ss-$s unshare -m --propagation private sh -c \
    "mount --bind $d/run /run && exec env STRONGSWAN_CONF=$d/strongswan.conf /usr/lib/ipsec/charon" >"$d/charon.stdout" 2>&1 &
  PIDS+=($!); TPIDS[ss]="${TPIDS[ss]:-} $!"
  waitfor 10 test -S "$d/charon.vici" || { echo "charon $s did not start"; return 1; }
  swanctl --load-all --uri "unix://$d/charon.vici" --file "$d/swanctl.conf" >/dev/null
}

up_ss() {
  mkpair $P-ss-a $P-ss-b "$(under ss 1)/24" "$(under ss 2)/24"
  ip -n $P-ss-a addr add "$(inner ss 1)/32" dev $P-ss-av
  ip -n $P-ss-b addr add "$(inner ss 2)/32" dev $P-ss-bv
  rm -rf "$WORK/ss"; ss_conf a; ss_conf b
  start_charon b && start_charon a || return 1
  waitfor 15 sh -c "swanctl --list-sas --uri unix://$WORK/ss/a/charon.vici | grep -q INSTALLED" \
    || { echo "strongSwan CHILD_SA not installed"; return 1; }
  iperf_server $P-ss-b "$(inner ss 2)"
}

ok=""
for c in $CFGS; do
  if up_$c; then ok="$ok $c"; else echo "skip $c: setup failed" >&2; fi
done
CFGS=$ok
sleep 1

# ---------------------------------------------------------------- measure
TSV=$RES/dataplane.tsv
echo -e "rep\tcfg\tMbit_s\tretransmits\tGB\ttunnel_cpu_s\ttunnel_cpu_s_per_GB\tmachine_cpu_s_per_GB" | tee "$TSV"
for rep in $(seq "$REPS"); do
  for c in $CFGS; do
    src=""; [ $c = ss ] && src="-B $(inner ss 1)"
    t0=$(cputicks ${TPIDS[$c]:-}); m0=$(busyticks)
    j=$(ip netns exec $P-$c-a iperf3 -c "$(dst $c)" $src -t "$T" -J 2>&1)
    t1=$(cputicks ${TPIDS[$c]:-}); m1=$(busyticks)
    echo "$j" >"$RES/iperf-$c-$rep.json"
    echo "$j" | python3 -c "
import json, sys
rep, cfg, tck, dt, dm = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
try:
    e = json.load(sys.stdin)['end']
    r = e['sum_received']; gb = r['bytes'] / 1e9
    cpu = dt / tck
    print('%s\t%s\t%.0f\t%d\t%.3f\t%.2f\t%s\t%.2f' % (rep, cfg, r['bits_per_second'] / 1e6, e['sum_sent'].get('retransmits', 0),
          gb, cpu, ('%.2f' % (cpu / gb)) if cfg != 'raw' and gb > 0 else '-', (dm / tck) / gb if gb > 0 else 0))
except Exception as ex:
    print('%s\t%s\tERR %s' % (rep, cfg, str(ex)[:60]))
" "$rep" "$c" "$TCK" $((t1 - t0)) $((m1 - m0)) | tee -a "$TSV"
  done
done

# ---------------------------------------------------------------- summary
python3 - "$TSV" <<'EOPY' | tee "$RES/summary.txt"
import sys, statistics as st, collections
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1])][1:]
v = collections.defaultdict(dict); cpu = collections.defaultdict(list); mcpu = collections.defaultdict(list)
for r in rows:
    try: mb = float(r[2])
    except (ValueError, IndexError): continue
    v[r[1]][r[0]] = mb
    if r[6] != '-': cpu[r[1]].append(float(r[6]))
    mcpu[r[1]].append(float(r[7]))
def mm(xs): return '%.2f [%.2f..%.2f]' % (st.median(xs), min(xs), max(xs)) if xs else '-'
print('\npath     Mbit/s median [min..max]      tunnel CPU s/GB        machine CPU s/GB')
for c in ['raw', 'mifsec', 'wg', 'ss']:
    if c in v:
        xs = list(v[c].values())
        print('%-8s %-29s %-22s %s' % (c, '%.0f [%.0f..%.0f]' % (st.median(xs), min(xs), max(xs)), mm(cpu[c]), mm(mcpu[c])))
print('\nratios taken rep by rep (throughput):')
for a, b in [('mifsec', 'wg'), ('mifsec', 'ss'), ('mifsec', 'raw'), ('wg', 'raw'), ('ss', 'raw')]:
    rs = [v[a][k] / v[b][k] for k in sorted(v.get(a, {})) if k in v.get(b, {}) and v[b][k] > 0]
    if rs:
        print('  %-6s / %-3s  per rep: %s   median %.2f' % (a, b, ' '.join('%.2f' % x for x in rs), st.median(rs)))
EOPY
echo "results: $RES"
