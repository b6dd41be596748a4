#!/usr/bin/env bash
# IKE handshake rate and CPU cost, mifsec <-> mifsec against strongSwan <->
# strongSwan in the same run (root; network namespaces). A sample is N
# IKE SA + first Child SA establishments (IKE_SA_INIT + IKE_AUTH, PSK,
# x25519) driven at concurrency C from fresh processes in fresh
# namespaces; per sample it reports establishments/s, the latency of one
# establishment, and the CPU (utime+stime from /proc/PID/stat, all threads,
# kernel work in syscalls included) of each side per establishment.
# Implementations alternate within each repetition, so every ratio is
# taken between samples of the same run.
#
#   bench/handshake.sh                    # N=300, concurrency 1 and 16, 3 reps
#   N=500 REPS=5 CONCS="16" bench/handshake.sh
#   IMPLS=mifsec bench/handshake.sh       # mifsec only
#   MIFSEC_DP=userspace bench/handshake.sh  # mifsec with its userspace data plane (TUN)
#   PIN=0 bench/handshake.sh              # every process on CPU 0 (no cross-CPU wake-ups)
#
# mifsec: bench/cmd/ikebench on both ends (engine.Engine with the real UDP
# transport and, by default, a null data plane; the responder leases a
# virtual IP per peer). strongSwan: charon with kernel-libipsec, driven by
# bench/cmd/vicibench over vici (see bench/ike-lib.sh for both set-ups).
# Results: $OUT (default /tmp/mfb-handshake/results.tsv) and a summary.
# The older gRPC round-trip benchmark (teardown included) is still
# `go test -bench MifsecHandshake ./test/interop/`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "handshake.sh: needs root (network namespaces)" >&2; exit 1; }
. bench/lib.sh
. bench/ike-lib.sh

N=${N:-300}
REPS=${REPS:-3}
CONCS=${CONCS:-"1 16"}
IMPLS=${IMPLS:-"strongswan mifsec"}
MIFSEC_DP=${MIFSEC_DP:-null}
D=${D:-/tmp/mfb-handshake}
OUT=${OUT:-$D/results.tsv}
BIN=$D/bin

cleanup() {
  [ -n "${A_PID:-}" ] && stop_pid "$A_PID"
  [ -n "${B_PID:-}" ] && stop_pid "$B_PID"
  A_PID= B_PID=
  delpair "$IKE_A" "$IKE_B"
}
trap cleanup EXIT

mkdir -p "$D"
ike_build "$D"
case " $IMPLS " in *" strongswan "*) need swanctl "strongSwan" && [ -x "$CHARON" ] || { echo "no charon at $CHARON" >&2; exit 1; } ;; esac

run_strongswan() { # CONC
  local a=$D/sw/a b=$D/sw/b
  rm -rf "$D/sw"; mkdir -p "$a" "$b"
  ike_pair
  sw_addrs 1 "$N"
  sw_start "$IKE_B" "$b" 16; B_PID=$SW_PID
  sw_start "$IKE_A" "$a" 64; A_PID=$SW_PID
  sw_responder "$b"
  sw_initiator "$a" 1 "$N"
  sleep 1
  $(pin) "$BIN/vicibench" -socket "$a/charon.vici" -n "$N" -conc "$1" -pids "$A_PID,$B_PID"
}

run_mifsec() { # CONC
  local flags=(-dataplane "$MIFSEC_DP")
  rm -rf "$D/mf"
  ike_pair
  RESP_DIR=$D/mf/r
  mf_responder "$RESP_DIR" "${flags[@]}"; B_PID=$MF_PID
  mf_initiator "$D/mf/i" -n "$N" -conc "$1" "${flags[@]}"
}

echo "handshake.sh: N=$N REPS=$REPS CONCS=[$CONCS] IMPLS=[$IMPLS] mifsec data plane=$MIFSEC_DP pinned to CPUs=[${PIN:-}]" >&2
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r), $(go version | cut -d' ' -f3), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT.machine" >&2
: > "$OUT"
order=($IMPLS)
for rep in $(seq "$REPS"); do
  for conc in $CONCS; do
    for impl in "${order[@]}"; do
      if "run_$impl" "$conc" > "$D/line"; then line=$(tail -1 "$D/line")
      else echo "rep $rep $impl conc=$conc failed" >&2; line="$impl n=$N conc=$conc failed=1"; fi
      cleanup
      echo "rep=$rep load=$(cut -d' ' -f1 /proc/loadavg) $line" | tee -a "$OUT"
    done
  done
  # Alternate which implementation goes first.
  order=($(printf '%s\n' "${order[@]}" | tac))
done

# Summary: medians per implementation and concurrency, and the per-rep
# ratio mifsec/strongSwan of the rate (same rep, same concurrency).
python3 - "$OUT" <<'EOP'
import sys, statistics as st
rows = []
for line in open(sys.argv[1]):
    f = line.split()
    d = {'impl': f[2]}
    for kv in f:
        if '=' in kv:
            k, v = kv.split('=', 1)
            d[k] = v
    rows.append(d)
def num(d, k):
    try: return float(d[k])
    except (KeyError, ValueError): return None
keys = ['rate', 'lat_med_ms', 'cpu_init_ms', 'cpu_resp_ms']
print('\n%-11s %5s %5s  %s' % ('impl', 'conc', 'reps', '  '.join('%-22s' % k for k in keys)))
for conc in sorted({r['conc'] for r in rows}, key=int):
    for impl in ('strongswan', 'mifsec'):
        rs = [r for r in rows if r['impl'] == impl and r['conc'] == conc and num(r, 'rate')]
        if not rs: continue
        cells = []
        for k in keys:
            v = sorted(num(r, k) for r in rs)
            cells.append('%-22s' % ('%.3g [%.3g..%.3g]' % (st.median(v), v[0], v[-1])))
        print('%-11s %5s %5d  %s' % (impl, conc, len(rs), '  '.join(cells)))
    ratios = []
    for rep in sorted({r['rep'] for r in rows}):
        m = [num(r, 'rate') for r in rows if r['rep'] == rep and r['conc'] == conc and r['impl'] == 'mifsec']
        s = [num(r, 'rate') for r in rows if r['rep'] == rep and r['conc'] == conc and r['impl'] == 'strongswan']
        if m and s and m[0] and s[0]: ratios.append(m[0] / s[0])
    if ratios:
        print('  conc=%s rate ratio mifsec/strongSwan per rep: %s (median %.2f)' % (conc, ' '.join('%.2f' % x for x in ratios), st.median(ratios)))
EOP
echo "results: $OUT" >&2
