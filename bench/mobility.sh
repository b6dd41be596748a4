#!/usr/bin/env bash
# Mobility benchmarks in network namespaces (root), in one run on the same
# topology (test/topo: end user with RAN and WLAN links to the gateway, a
# server behind it), a 1,000 datagrams/s flow from the end user's inner
# address to the server throughout:
#
#   outage   the link carrying the flow goes down; time from the netlink
#            event to the first ESP on the other link and to the first
#            delivered datagram sent after the loss, datagrams lost
#   migrate  MigrateIkeSa to the other interface, both links up: loss
#   steer    a steering-rule update moves the flow: time to its first ESP
#            on the new link, loss
#
# for mifsec↔mifsec (single-path MOBIKE, and multipath with a steering
# rule), mifsec end user ↔ strongSwan gateway, and strongSwan↔strongSwan
# (MOBIKE, kernel-libipsec): bench/cmd/mobility's BenchmarkMobility.
#
#   bench/mobility.sh                 # 20 rounds of each
#   ROUNDS=50 bench/mobility.sh
#   SYSTEMS='mifsec-mobike|strongswan' bench/mobility.sh
#
# Results: one line per system and measurement with percentiles (ms),
# lost datagrams per round, duplicates and the largest reordering; every
# round in the log above it. docs/benchmarks-mobility.md reads them.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
[ "$(id -u)" -eq 0 ] || { echo "mobility.sh: needs root (network namespaces)" >&2; exit 1; }
need ip iproute2
ROUNDS=${ROUNDS:-20}
SYSTEMS=${SYSTEMS:-.}
if ! command -v swanctl >/dev/null 2>&1; then
  echo "mobility.sh: strongSwan not installed (make deps): its systems are skipped" >&2
fi
# One CPU and no parallel tests: both peers share the machine with the flow.
exec go test -run '^$' -bench "Mobility/($SYSTEMS)/" -benchtime "${ROUNDS}x" -cpu 1 -parallel 1 -count 1 \
  -timeout 60m -v ./bench/cmd/mobility/
