package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/dataplane/probe"
	"github.com/mifsec/mifsec/engine/dataplane/userspace"
	"github.com/mifsec/mifsec/engine/dataplane/xfrm"
	"github.com/mifsec/mifsec/engine/sa"
	"github.com/mifsec/mifsec/engine/transport"
)

// ikeOptions choose the data plane and the IKE ports.
type ikeOptions struct {
	dataplane string
	tun       string
	tunMTU    int
	ikePort   uint
	natPort   uint
	// IKE retransmission schedule (RFC 7296 §2.1); zero values keep the
	// defaults (strongSwan's: 4 s, 1.8, 5 tries, about 165 s in all).
	rtTimeout time.Duration
	rtBase    float64
	rtTries   int
}

func (o *ikeOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.dataplane, "dataplane", "auto", "ESP data plane: auto (xfrm when the kernel can do ESP, else userspace), xfrm, userspace, or none (API and configuration only: no IKE, no ESP)")
	fs.StringVar(&o.tun, "tun", "mifsec0", "TUN link of the userspace data plane")
	fs.IntVar(&o.tunMTU, "tun-mtu", userspace.DefaultMTU, "MTU of the TUN link")
	fs.UintVar(&o.ikePort, "ike-port", 500, "UDP port of IKE (RFC 7296 §2.11)")
	fs.UintVar(&o.natPort, "nat-port", 4500, "UDP port of NAT traversal and ESP-in-UDP (RFC 3948)")
	fs.DurationVar(&o.rtTimeout, "ike-retransmit-timeout", 0, "first IKE retransmission timeout (0: 4s)")
	fs.Float64Var(&o.rtBase, "ike-retransmit-base", 0, "factor between IKE retransmission timeouts (0: 1.8)")
	fs.IntVar(&o.rtTries, "ike-retransmit-tries", 0, "IKE retransmissions before an exchange fails (0: 5)")
}

// retransmit is the schedule for engine.Config; errors for impossible values.
func (o *ikeOptions) retransmit() (sa.Retransmit, error) {
	if o.rtTimeout < 0 || o.rtTries < 0 || (o.rtBase != 0 && o.rtBase < 1) {
		return sa.Retransmit{}, fmt.Errorf("--ike-retransmit-timeout and --ike-retransmit-tries must not be negative, --ike-retransmit-base at least 1")
	}
	return sa.Retransmit{Timeout: o.rtTimeout, Factor: o.rtBase, Tries: o.rtTries}, nil
}

// ikeStack is the data plane and the IKE transport, closed in that order
// after the engine.
type ikeStack struct {
	dp    dataplane.DataPlane
	tr    *transport.Transport
	encap interface{ Close() error }
}

// transport is the IKE transport, or nil when IKE is off.
func (s *ikeStack) transport() engine.IKETransport {
	if s.tr == nil {
		return nil
	}
	return s.tr
}

func (s *ikeStack) Close() {
	if s.tr != nil {
		s.tr.Close()
	}
	if s.encap != nil {
		s.encap.Close()
	}
	if s.dp != nil {
		s.dp.Close()
	}
}

// startIKE probes the kernel, starts the chosen data plane and opens the
// IKE sockets.
func startIKE(o ikeOptions, log hclog.Logger) (*ikeStack, error) {
	if o.ikePort == 0 || o.ikePort > 65535 || o.natPort == 0 || o.natPort > 65535 || o.ikePort == o.natPort {
		return nil, fmt.Errorf("--ike-port and --nat-port must be two different ports in 1..65535")
	}
	if o.dataplane == "none" {
		log.Info("IKE and ESP disabled (--dataplane none)")
		return &ikeStack{}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	choice, err := probe.Select(ctx, o.dataplane, nil, log)
	if err != nil {
		return nil, err
	}
	s := &ikeStack{}
	var encap transport.Encap
	switch choice.Plane {
	case probe.Xfrm:
		dp, err := xfrm.New(xfrm.Config{}, log)
		if err != nil {
			return nil, err
		}
		k := transport.NewKernelEncap(log)
		s.dp, s.encap, encap = dp, k, k
	default:
		dp, err := userspace.New(userspace.Config{TUN: o.tun, MTU: o.tunMTU, Port: uint16(o.natPort)}, log)
		if err != nil {
			return nil, fmt.Errorf("userspace data plane: %w", err)
		}
		s.dp, encap = dp, userspaceEncap{dp}
	}
	tr, err := transport.New(transport.Config{Port: uint16(o.ikePort), NATPort: uint16(o.natPort)}, encap, log)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.tr = tr
	return s, nil
}

// userspaceEncap adapts the userspace data plane's handler type.
type userspaceEncap struct{ *userspace.DataPlane }

func (u userspaceEncap) SetIKEHandler(h func(local, remote netip.AddrPort, msg []byte)) {
	if h == nil {
		u.DataPlane.SetIKEHandler(nil)
		return
	}
	u.DataPlane.SetIKEHandler(h)
}
