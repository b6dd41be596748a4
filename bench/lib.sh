# bench/lib.sh - shared helpers for the benchmark scripts; source it.
# Everything happens inside network namespaces the scripts create (prefix
# mfb-) joined by veth pairs; addresses come from 198.18.0.0/15 (RFC 2544).

BENCH_NS_PREFIX=${BENCH_NS_PREFIX:-mfb}

# mkpair NSA NSB IPA/LEN IPB/LEN : two namespaces joined by a veth pair (MTU 1500).
mkpair() {
  local a=$1 b=$2 ipa=$3 ipb=$4
  ip netns add "$a"; ip netns add "$b"
  ip -n "$a" link set lo up; ip -n "$b" link set lo up
  ip link add "${a}v" netns "$a" type veth peer name "${b}v" netns "$b"
  ip -n "$a" addr add "$ipa" dev "${a}v"; ip -n "$b" addr add "$ipb" dev "${b}v"
  ip -n "$a" link set "${a}v" up; ip -n "$b" link set "${b}v" up
}

delpair() { ip netns del "$1" 2>/dev/null || true; ip netns del "$2" 2>/dev/null || true; }

# cputicks PID... : utime+stime of the processes (all threads), in clock ticks.
cputicks() {
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat")))
  done
  echo "$t"
}

# busyticks : non-idle CPU ticks of the whole machine (user..steal, no idle/iowait).
busyticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }

# waitfor SECONDS CMD... : poll CMD every 0.1 s until it succeeds.
waitfor() {
  local n=$(( $1 * 10 )); shift
  while [ $n -gt 0 ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; n=$((n-1)); done
  return 1
}

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing: $1 ($2)" >&2; return 1; }; }
