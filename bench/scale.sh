#!/usr/bin/env bash
# IKE at scale, mifsec against strongSwan in the same run (root; network
# namespaces; workload and set-ups in bench/ike-lib.sh):
#
#  1. Resident memory per established IKE SA with one Child SA, on each
#     side, at N = 1,000, 3,000 and 10,000 SAs: (RSS after - RSS before) / N,
#     "before" taken once the configuration is loaded (the initiator's N
#     connections are not counted, as in the strongSwan anchor), "after"
#     SETTLE seconds after the last SA. mifsec also reports the Go heap in
#     use after a collection (heap KiB/SA). anon KiB/SA is the same with
#     RssAnon (code pages of the binary and libraries touched for the
#     first time are file pages, counted in VmRSS once per process). mifsec
#     initiators run in several processes (below); init_bulk is the growth
#     of the one that holds the N - 2*RW*W SAs between the rate windows,
#     per SA it holds (each window process adds a Go runtime's fixed
#     growth to init_rss).
#  2. Setup rate at N: the rate of the last W (100) SAs with N - W already
#     up, against the rate of the first W on a fresh responder, both
#     measured by identical fresh initiators (ratio = rate at N / rate at W).
#     A window of 100 lasts 25-50 ms, so each is measured RW (3) times in a
#     row (the first windows at 0, W, 2W SAs up, the last ones ending at N)
#     and the medians are compared.
#  2b. mifsec_one (mifsec only): memory with one initiator process holding
#     all N SAs (no rate windows), on a fresh pair: init_rss_kib_per_sa is
#     then the initiator's per-SA figure without the window processes'
#     runtimes, and resp_rss_kib_per_sa a second responder sample.
#  3. mifsec only: InitiateConnection to the first ESP packet on the wire
#     (userspace data plane on both ends, a packet socket on the initiator's
#     veth), ESP_SAMPLES fresh connections one after another.
#
# mifsec initiators: one process establishes the N - 2W SAs between the
# rate windows (an engine's per-event work no longer grows with its SA
# count, see docs/benchmarks-ike.md); PER=k spreads them over processes of
# at most k connections instead. Each holds its SAs (-hold) until the end,
# and its RSS growth counts. The rate windows use one fresh initiator
# process each.
#
#   bench/scale.sh                       # NS="1000 3000 10000", both
#   NS="1000" IMPLS=mifsec bench/scale.sh
#   ESP_SAMPLES=0 bench/scale.sh         # skip the first-ESP latency
#   NS="" bench/scale.sh                 # only the first-ESP latency
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "scale.sh: needs root (network namespaces)" >&2; exit 1; }
. bench/lib.sh
. bench/ike-lib.sh

NS=${NS-"1000 3000 10000"}  # NS="" runs only the first-ESP part
IMPLS=${IMPLS:-"strongswan mifsec mifsec_one"}
W=${W:-100}
RW=${RW:-3}
PER=${PER:-0}  # 0: one initiator process for the bulk
CONC=${CONC:-16}
SETTLE=${SETTLE:-3}
ESP_SAMPLES=${ESP_SAMPLES:-50}
D=${D:-/tmp/mfb-scale}
OUT=${OUT:-$D/results.txt}
BIN=$D/bin
HOLD_PIDS=()

cleanup() {
  local p
  for p in "${HOLD_PIDS[@]}"; do stop_pid "$p"; done
  HOLD_PIDS=()
  [ -n "${A_PID:-}" ] && stop_pid "$A_PID"
  [ -n "${B_PID:-}" ] && stop_pid "$B_PID"
  A_PID= B_PID=
  delpair "$IKE_A" "$IKE_B"
}
trap cleanup EXIT

mkdir -p "$D"
ike_build "$D"

# kv LINE KEY : the value of KEY=... in a result line.
kv() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -1; }

scale_strongswan() { # N
  local n=$1 a=$D/sw/a b=$D/sw/b r0 i0 r1 i1 first last
  rm -rf "$D/sw"; mkdir -p "$a" "$b"
  ike_pair
  sw_addrs 1 "$n"
  sw_start "$IKE_B" "$b" 16; B_PID=$SW_PID
  sw_start "$IKE_A" "$a" 64; A_PID=$SW_PID
  sw_responder "$b"
  sw_initiator "$a" 1 "$n"
  sleep 1
  r0=$(rss_kib "$B_PID"); i0=$(rss_kib "$A_PID"); ra0=$(anon_kib "$B_PID"); ia0=$(anon_kib "$A_PID")
  local j firsts="" lasts="" ww=$((RW * W))
  for j in $(seq 0 $((RW - 1))); do
    first=$("$BIN/vicibench" -socket "$a/charon.vici" -first $((j * W + 1)) -n "$W" -conc "$CONC" -pids "$A_PID,$B_PID")
    firsts="$firsts,$(kv "$first" rate)"
  done
  "$BIN/vicibench" -socket "$a/charon.vici" -first $((ww + 1)) -n $((n - 2 * ww)) -conc "$CONC" -pids "$A_PID,$B_PID" >"$D/sw/bulk"
  for j in $(seq $((RW - 1)) -1 0); do
    last=$("$BIN/vicibench" -socket "$a/charon.vici" -first $((n - (j + 1) * W + 1)) -n "$W" -conc "$CONC" -pids "$A_PID,$B_PID")
    lasts="$lasts,$(kv "$last" rate)"
  done
  sleep "$SETTLE"
  r1=$(rss_kib "$B_PID"); i1=$(rss_kib "$A_PID"); ra1=$(anon_kib "$B_PID"); ia1=$(anon_kib "$A_PID")
  local est
  est=$(swanctl_d "$b" --list-sas 2>/dev/null | grep -c ', ESTABLISHED, ' || true)
  python3 - "$n" "$est" "$r0" "$r1" "$i0" "$i1" "${firsts#,}" "${lasts#,}" "$ra0" "$ra1" "$ia0" "$ia1" <<'EOP'
import sys, statistics as st
n, est, r0, r1, i0, i1 = map(int, sys.argv[1:7])
fs, ls = [[float(x) for x in a.split(',')] for a in sys.argv[7:9]]
ra0, ra1, ia0, ia1 = map(int, sys.argv[9:13])
f, l = st.median(fs), st.median(ls)
print('strongswan N=%d established=%d resp_rss_kib_per_sa=%.2f init_rss_kib_per_sa=%.2f resp_anon_kib_per_sa=%.2f init_anon_kib_per_sa=%.2f rate_at_w=%.1f rate_at_n=%.1f ratio=%.3f rates_at_w=%s rates_at_n=%s resp_rss_kib=%d/%d init_rss_kib=%d/%d'
      % (n, est, (r1 - r0) / n, (i1 - i0) / n, (ra1 - ra0) / n, (ia1 - ia0) / n, f, l, l / f, sys.argv[7], sys.argv[8], r0, r1, i0, i1))
EOP
}

# mf_hold DIR PREFIX COUNT PORT : an initiator process that establishes
# COUNT SAs and keeps them; waits for its result line.
mf_hold() {
  local d=$1
  mkdir -p "$d"
  ip netns exec "$IKE_A" $(pin) "$BIN/ikebench" -role initiator -state "$d/state" -peer "$IKE_ADDR_B" \
    -peer-pid "$MF_PID" -ike "$IKE_PROP" -esp "$ESP_PROP" -psk "$IKE_PSK" ${MF_FLAGS:-} \
    -id-prefix "$2" -n "$3" -port "$4" -conc "$CONC" -window "$W" -hold >"$d/out" 2>"$d/log" &
  local pid=$!
  HOLD_PIDS+=("$pid")
  echo "$pid" > "$d/pid"
  while ! grep -q '^mifsec ' "$d/out" 2>/dev/null; do
    [ -d "/proc/$pid" ] || { echo "initiator $2 died" >&2; tail -3 "$d/log" >&2; return 1; }
    sleep 0.2
  done
}

scale_mifsec() { # N
  local n=$1 r0 r1 h0 h1 first last k left est
  rm -rf "$D/mf"
  ike_pair
  RESP_DIR=$D/mf/r
  mf_responder "$RESP_DIR" -pool 10.80.0.0/14; B_PID=$MF_PID
  sleep 1
  r0=$(rss_kib "$B_PID"); ra0=$(anon_kib "$B_PID"); h0=$(mf_heap)
  local j firsts="" lasts="" cfirsts="" clasts=""
  for j in $(seq 0 $((RW - 1))); do
    mf_hold "$D/mf/first$j" "f$j-" "$W" $((590 + j))
    first=$(cat "$D/mf/first$j/out")
    firsts="$firsts,$(kv "$first" rate)"; cfirsts="$cfirsts,$(kv "$first" cpu_resp_ms)"
  done
  left=$((n - 2 * RW * W)); k=0
  while [ "$left" -gt 0 ]; do
    local c=$left
    [ "$PER" -gt 0 ] && [ "$PER" -lt "$left" ] && c=$PER
    mf_hold "$D/mf/b$k" "b$k-" "$c" $((600 + k))
    left=$((left - c)); k=$((k + 1))
  done
  for j in $(seq 0 $((RW - 1))); do
    mf_hold "$D/mf/last$j" "l$j-" "$W" $((580 + j))
    last=$(cat "$D/mf/last$j/out")
    lasts="$lasts,$(kv "$last" rate)"; clasts="$clasts,$(kv "$last" cpu_resp_ms)"
  done
  sleep "$SETTLE"
  r1=$(rss_kib "$B_PID"); ra1=$(anon_kib "$B_PID"); h1=$(mf_heap)
  # Initiator side: each process's RSS growth since before its SAs; the
  # bulk processes' apart.
  local grow=0 dir i=0 before g bgrow=0 bn=0
  for dir in "$D"/mf/first* "$D"/mf/b* "$D"/mf/last*; do
    before=$(kv "$(cat "$dir/out")" rss_init_kib | cut -d/ -f1)
    g=$(($(rss_kib "$(cat "$dir/pid")") - before))
    grow=$((grow + g))
    case $dir in */b*) bgrow=$((bgrow + g)); bn=$((bn + $(kv "$(cat "$dir/out")" ok))) ;; esac
    i=$((i + 1))
  done
  est=$(cat "$D"/mf/*/out | grep -o ' ok=[0-9]*' | cut -d= -f2 | awk '{s += $1} END {print s + 0}')
  python3 - "$n" "$est" "$r0" "$r1" "$h0" "$h1" "$grow" "$i" "${firsts#,}" "${lasts#,}" \
    "${cfirsts#,}" "${clasts#,}" "$ra0" "$ra1" "$bgrow" "$bn" <<'EOP'
import sys, statistics as st
n, est, r0, r1, h0, h1, grow, procs = map(int, sys.argv[1:9])
fs, ls, cfs, cls = [[float(x) for x in a.split(',')] for a in sys.argv[9:13]]
ra0, ra1, bgrow, bn = map(int, sys.argv[13:17])
f, l, cf, cl = st.median(fs), st.median(ls), st.median(cfs), st.median(cls)
print('mifsec N=%d established=%d resp_rss_kib_per_sa=%.2f init_rss_kib_per_sa=%.2f resp_anon_kib_per_sa=%.2f init_bulk_rss_kib_per_sa=%.2f resp_heap_kib_per_sa=%.2f rate_at_w=%.1f rate_at_n=%.1f ratio=%.3f rates_at_w=%s rates_at_n=%s resp_cpu_ms_at_w=%.3f resp_cpu_ms_at_n=%.3f resp_rss_kib=%d/%d init_procs=%d init_bulk_sas=%d'
      % (n, est, (r1 - r0) / n, grow / n, (ra1 - ra0) / n, bgrow / max(bn, 1), (h1 - h0) / 1024 / n, f, l, l / f,
         sys.argv[9], sys.argv[10], cf, cl, r0, r1, procs, bn))
EOP
}

# scale_mifsec_one N : one initiator process establishes all N SAs on a
# fresh pair and reports both sides' growth SETTLE seconds after the last.
scale_mifsec_one() {
  local n=$1 out
  rm -rf "$D/mf1"
  ike_pair
  RESP_DIR=$D/mf1/r
  mf_responder "$RESP_DIR" -pool 10.80.0.0/14; B_PID=$MF_PID
  sleep 1
  out=$(mf_initiator "$D/mf1/i" -n "$n" -conc "$CONC" -settle "${SETTLE}s" | tail -1)
  echo "mifsec_one N=$n established=$(kv "$out" ok) init_rss_kib_per_sa=$(kv "$out" rss_init_kib_per_sa)" \
    "resp_rss_kib_per_sa=$(kv "$out" rss_resp_kib_per_sa) init_heap_kib_per_sa=$(kv "$out" heap_init_kib_per_sa)" \
    "resp_heap_kib_per_sa=$(kv "$out" heap_resp_kib_per_sa) init_rss_kib=$(kv "$out" rss_init_kib) resp_rss_kib=$(kv "$out" rss_resp_kib)"
}

# mf_heap : the responder's Go heap in use after a collection, in bytes.
mf_heap() {
  rm -f "$RESP_DIR/heap.json"
  kill -USR1 "$MF_PID"
  waitfor 5 test -s "$RESP_DIR/heap.json"
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["heap_inuse"])' "$RESP_DIR/heap.json"
}

first_esp() {
  rm -rf "$D/esp"; mkdir -p "$D/esp"
  ike_pair
  RESP_DIR=$D/esp/r
  mf_responder "$RESP_DIR" -dataplane userspace -tun mfbr0; B_PID=$MF_PID
  mf_initiator "$D/esp/i" -dataplane userspace -tun mfbi0 -esp-samples "$ESP_SAMPLES" -sniff "${IKE_A}v"
}

echo "scale.sh: NS=[$NS] IMPLS=[$IMPLS] W=$W PER=$PER CONC=$CONC SETTLE=$SETTLE" >&2
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r), $(go version | cut -d' ' -f3), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT"
for n in $NS; do
  for impl in $IMPLS; do
    if "scale_$impl" "$n" > "$D/line"; then line=$(tail -1 "$D/line")
    else line="$impl N=$n failed=1"; fi
    cleanup
    echo "load=$(cut -d' ' -f1 /proc/loadavg) $line" | tee -a "$OUT"
  done
done
if [ "$ESP_SAMPLES" -gt 0 ]; then
  if first_esp > "$D/line"; then line=$(tail -1 "$D/line"); else line="mifsec first_esp failed=1"; fi
  cleanup
  echo "load=$(cut -d' ' -f1 /proc/loadavg) $line" | tee -a "$OUT"
fi
echo "results: $OUT" >&2
