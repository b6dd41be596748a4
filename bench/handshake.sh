#!/usr/bin/env bash
# Handshake benchmarks in network namespaces (root). Each round is a full
# IKE_SA + CHILD_SA setup (IKE_SA_INIT, IKE_AUTH with PSK, virtual IP,
# NAT-T) driven over vici, then a teardown; the ms/setup metric is the
# time from the initiate request to the CHILD_SA being installed.
#
#   bench/handshake.sh                 # strongSwan <-> strongSwan baseline and
#                                      # mifsecd <-> mifsecd (conc 1 and 16), 50 rounds
#   ROUNDS=200 bench/handshake.sh
#   BENCH='Handshake' PKGS='./test/strongswan/ ./test/interop/' bench/handshake.sh
#
# BENCH is the go test -bench pattern, PKGS the packages holding the
# benchmarks: test/strongswan BenchmarkHandshake (vici) and test/interop
# BenchmarkMifsecHandshake (gRPC; setups/s, ms/setup, CPU ms per round of
# each mifsecd from /proc, teardown included). One CPU, no parallel tests: the two
# peers share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "handshake.sh: needs root (network namespaces)" >&2; exit 1; }
ROUNDS=${ROUNDS:-50}
BENCH=${BENCH:-Handshake}
PKGS=${PKGS:-./test/strongswan/ ./test/interop/}
# shellcheck disable=SC2086
exec go test -run '^$' -bench "$BENCH" -benchtime "${ROUNDS}x" -cpu 1 -parallel 1 -count 1 $PKGS
