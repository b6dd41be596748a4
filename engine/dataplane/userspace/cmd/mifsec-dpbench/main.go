// Command mifsec-dpbench runs one end of a userspace data-plane tunnel with
// fixed, publicly known keys, for benchmarks (bench/dataplane.sh) only:
// never use it to protect traffic. Run it inside the namespace of the end,
// e.g.
//
//	ip netns exec A mifsec-dpbench -side a -local 198.18.0.1 -remote 198.18.0.2 \
//	    -addr 198.19.1.1/24 -route 198.19.2.0/24
//
// It runs until SIGINT or SIGTERM and then prints the SA counters.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/dataplane/userspace"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mifsec-dpbench:", err)
		os.Exit(1)
	}
}

// benchKeys derives a fixed AES-128-GCM key and salt from a seed byte.
func benchKeys(seed byte) dataplane.Keys {
	k := make([]byte, 20)
	for i := range k {
		k[i] = seed*31 + byte(i)
	}
	return dataplane.Keys{Enc: k}
}

func run() error {
	side := flag.String("side", "a", "a or b: picks SPIs and keys so that an a and a b talk")
	tun := flag.String("tun", "mfsbench0", "TUN link name")
	mtu := flag.Int("mtu", 1400, "TUN MTU")
	local := flag.String("local", "", "local outer address (required)")
	remote := flag.String("remote", "", "remote outer address (required)")
	port := flag.Uint("port", 4500, "UDP port on both ends")
	addr := flag.String("addr", "", "TUN address/prefix (required); also the local traffic selector")
	route := flag.String("route", "", "remote inner prefix routed into the TUN (required); also the remote traffic selector")
	workers := flag.Int("workers", 0, "crypto goroutines (0 = GOMAXPROCS)")
	noOffload := flag.Bool("no-offload", false, "disable TUN virtio offloads and UDP GSO/GRO")
	verbose := flag.Bool("v", false, "debug logging")
	flag.Parse()

	la, err := netip.ParseAddr(*local)
	if err != nil {
		return fmt.Errorf("-local: %w", err)
	}
	ra, err := netip.ParseAddr(*remote)
	if err != nil {
		return fmt.Errorf("-remote: %w", err)
	}
	ap, err := netip.ParsePrefix(*addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	rp, err := netip.ParsePrefix(*route)
	if err != nil {
		return fmt.Errorf("-route: %w", err)
	}
	spiOut, spiIn, keyOut, keyIn := uint32(0x1001), uint32(0x2002), byte(1), byte(2)
	switch *side {
	case "a":
	case "b":
		spiOut, spiIn, keyOut, keyIn = spiIn, spiOut, keyIn, keyOut
	default:
		return fmt.Errorf("-side must be a or b")
	}
	level := hclog.Info
	if *verbose {
		level = hclog.Debug
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "dpbench", Level: level, Output: os.Stderr})
	lap, rap := netip.AddrPortFrom(la, uint16(*port)), netip.AddrPortFrom(ra, uint16(*port))
	dp, err := userspace.New(userspace.Config{
		TUN: *tun, MTU: *mtu, Addresses: []netip.Prefix{ap}, Routes: []netip.Prefix{rp},
		Listen: []netip.AddrPort{lap}, Port: uint16(*port), DisableOffload: *noOffload, Workers: *workers,
	}, log)
	if err != nil {
		return err
	}
	defer dp.Close()
	lts := []dataplane.Selector{{Prefix: ap.Masked()}}
	rts := []dataplane.Selector{{Prefix: rp.Masked()}}
	ctx := context.Background()
	for _, sa := range []dataplane.SA{
		{SPI: spiOut, Direction: dataplane.Out, Keys: benchKeys(keyOut), Local: lap, Remote: rap, LocalTS: lts, RemoteTS: rts},
		{SPI: spiIn, Direction: dataplane.In, Keys: benchKeys(keyIn), Local: lap, Remote: rap, LocalTS: lts, RemoteTS: rts, ReplayWindow: 1024},
	} {
		sa.Mode, sa.Suite, sa.Encap = dataplane.Tunnel, dataplane.SuiteAESGCM128, true
		if err := dp.AddSA(ctx, sa); err != nil {
			return err
		}
	}
	if err := dp.AddPolicy(ctx, dataplane.Policy{ID: 1, Direction: dataplane.Out, Action: dataplane.Protect,
		Local: lts, Remote: rts, SPIs: []uint32{spiOut}}); err != nil {
		return err
	}
	log.Info("ready", "tun", dp.TUNName(), "local", lap, "remote", rap)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	for _, x := range []struct {
		spi uint32
		dir dataplane.Direction
	}{{spiOut, dataplane.Out}, {spiIn, dataplane.In}} {
		if c, err := dp.Counters(ctx, x.spi, x.dir); err == nil {
			fmt.Fprintf(os.Stderr, "sa 0x%x %s: packets=%d bytes=%d drops=%v\n", x.spi, x.dir, c.Packets, c.Bytes, c.Drops)
		}
	}
	st := dp.Stats()
	fmt.Fprintf(os.Stderr, "data plane: drops=%v tun_writes=%d tun_coalesced=%d\n", st.Drops, st.TUNWrites, st.TUNCoalesced)
	return nil
}
