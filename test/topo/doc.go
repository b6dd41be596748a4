// Package topo builds throw-away network topologies in Linux network
// namespaces for interop and end-to-end tests, and injects faults into
// them.
//
// Build creates the issue topology (namespaces ue, gw and srv joined by
// the RAN, WLAN and LAN veths, see the address variables) with unique
// names and removes it in t.Cleanup; a stale-namespace sweeper removes
// what a killed test binary left behind (SweepStale, run once per
// process). Helpers run commands in a namespace (Run, Command), run Go
// code in it (Do), take links down and up, remove and add addresses, drop
// IKE/NAT-T traffic or a random share of all packets with nftables
// (Blackhole, Loss), count ICMP echo loss, duplicates and outages at a
// given rate (StartPing), and measure TCP throughput with iperf3
// (Iperf3). Every helper is bounded by a context (DefaultTimeout when it
// has no deadline) and every process it starts dies with the test binary
// (SIGKILL as parent-death signal).
//
// The package is test support: it imports nothing of the engine and is
// imported only by tests, benchmarks and test-support packages.
package topo
