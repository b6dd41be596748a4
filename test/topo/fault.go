package topo

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// LinkDown sets dev down (ip link set dev DEV down).
func (n *Netns) LinkDown(ctx context.Context, dev string) error {
	_, err := n.Run(ctx, "ip", "link", "set", "dev", dev, "down")
	return err
}

// LinkUp sets dev up (ip link set dev DEV up) and waits until it is
// operationally up: a veth's carrier follows after a moment (linkwatch),
// and packets sent before are lost. The peer end must be up already.
func (n *Netns) LinkUp(ctx context.Context, dev string) error {
	if err := n.linkSetUp(ctx, dev); err != nil {
		return err
	}
	return n.WaitOperUp(ctx, dev)
}

func (n *Netns) linkSetUp(ctx context.Context, dev string) error {
	_, err := n.Run(ctx, "ip", "link", "set", "dev", dev, "up")
	return err
}

// WaitOperUp polls until dev reports operational state UP (or UNKNOWN,
// as devices without carrier handling do), bounded by ctx or DefaultTimeout.
func (n *Netns) WaitOperUp(ctx context.Context, dev string) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	for {
		out, err := n.Run(ctx, "ip", "-o", "link", "show", "dev", dev)
		if err != nil {
			return err
		}
		if strings.Contains(out, " state UP ") || strings.Contains(out, " state UNKNOWN ") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topo: %s in %s not operationally up: %w (%s)", dev, n.name, ctx.Err(), strings.TrimSpace(out))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// AddrAdd adds prefix (e.g. 198.51.100.2/24) to dev.
func (n *Netns) AddrAdd(ctx context.Context, dev, prefix string) error {
	_, err := n.Run(ctx, "ip", "addr", "add", prefix, "dev", dev)
	return err
}

// AddrDel removes prefix from dev.
func (n *Netns) AddrDel(ctx context.Context, dev, prefix string) error {
	_, err := n.Run(ctx, "ip", "addr", "del", prefix, "dev", dev)
	return err
}

// Rule is a set of nftables rules in a table of its own; Remove undoes it.
type Rule struct {
	ns    *Netns
	table string
}

// Table is the nftables table holding the rule (family inet).
func (r *Rule) Table() string { return r.table }

// Remove deletes the rule's table (nft delete table inet NAME).
func (r *Rule) Remove(ctx context.Context) error {
	_, err := r.ns.Run(ctx, "nft", "delete", "table", "inet", r.table)
	return err
}

var ruleCounter atomic.Int32

// addTable loads one table whose input, output and forward chains each hold
// body, every line prefixed with the interface match of the chain.
func (n *Netns) addTable(ctx context.Context, kind string, iface string, body string) (*Rule, error) {
	table := fmt.Sprintf("%s_%s_%d", Prefix, kind, ruleCounter.Add(1))
	match := func(dir string) string {
		if iface == "" {
			// never loopback: helpers and charon's vici are local
			if dir == "oifname" {
				return `oifname != "lo" `
			}
			return `iifname != "lo" `
		}
		return fmt.Sprintf("%s %q ", dir, iface)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", table)
	for _, c := range []struct{ name, hook, dir string }{
		{"in", "input", "iifname"},
		{"out", "output", "oifname"},
		{"fwd_in", "forward", "iifname"},
		{"fwd_out", "forward", "oifname"},
	} {
		if iface == "" && c.name == "fwd_out" {
			continue // one forward chain, or forwarded packets would be hit twice
		}
		fmt.Fprintf(&b, "  chain %s {\n    type filter hook %s priority -10; policy accept;\n", c.name, c.hook)
		for _, line := range strings.Split(body, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				fmt.Fprintf(&b, "    %s%s\n", match(c.dir), line)
			}
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	cmd := n.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, &CmdError{Args: []string{"nft", "-f", "-", "(" + table + ")"}, Err: err, Output: string(out) + "\n" + b.String()}
	}
	return &Rule{ns: n, table: table}, nil
}

// Blackhole drops every IKE and NAT-T datagram (UDP port 500 or 4500 as
// source or destination) in and out of the namespace, on iface only when
// iface is not empty. ESP-in-UDP on 4500 is dropped too.
func (n *Netns) Blackhole(ctx context.Context, iface string) (*Rule, error) {
	return n.addTable(ctx, "blackhole", iface, `
udp dport { 500, 4500 } drop
udp sport { 500, 4500 } drop`)
}

// Loss drops percent % of all packets at random, in both directions
// (`numgen random mod 100 < N` on input, output and forward), on iface
// only when iface is not empty. Loopback is never affected.
func (n *Netns) Loss(ctx context.Context, iface string, percent int) (*Rule, error) {
	if percent < 0 || percent > 100 {
		return nil, fmt.Errorf("topo: loss of %d%%: want 0..100", percent)
	}
	return n.addTable(ctx, "loss", iface, fmt.Sprintf("numgen random mod 100 < %d drop", percent))
}
