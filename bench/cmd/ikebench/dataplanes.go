package main

import (
	"context"
	"net/netip"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/dataplane/userspace"
	"github.com/mifsec/mifsec/engine/transport"
)

// nullDP is a data plane that keeps nothing but counts: the engine's side
// of installing SAs is exercised, no packet is ever protected.
type nullDP struct {
	mu     sync.Mutex
	sas    int
	pols   int
	events chan dataplane.Event
}

func newNullDP() *nullDP { return &nullDP{events: make(chan dataplane.Event)} }

func (d *nullDP) Name() string { return "null" }

func (d *nullDP) AddSA(_ context.Context, sa dataplane.SA) error {
	d.mu.Lock()
	d.sas++
	d.mu.Unlock()
	return nil
}

func (d *nullDP) UpdateSA(context.Context, uint32, dataplane.Direction, dataplane.AddrUpdate) error {
	return nil
}

func (d *nullDP) DeleteSA(context.Context, uint32, dataplane.Direction) error {
	d.mu.Lock()
	d.sas--
	d.mu.Unlock()
	return nil
}

func (d *nullDP) AddPolicy(context.Context, dataplane.Policy) error {
	d.mu.Lock()
	d.pols++
	d.mu.Unlock()
	return nil
}

func (d *nullDP) UpdatePolicy(context.Context, dataplane.Policy) error { return nil }

func (d *nullDP) DeletePolicy(context.Context, uint64) error {
	d.mu.Lock()
	d.pols--
	d.mu.Unlock()
	return nil
}

func (d *nullDP) SetSteering(dataplane.Steering) {}

func (d *nullDP) Counters(context.Context, uint32, dataplane.Direction) (dataplane.Counters, error) {
	return dataplane.Counters{}, nil
}

func (d *nullDP) Events() <-chan dataplane.Event { return d.events }

func (d *nullDP) Close() error { return nil }

// userspacePlane opens the userspace data plane (TUN + ESP in Go) and the
// NAT-T port it shares with IKE, as mifsecd --dataplane userspace does.
func userspacePlane(o options, log hclog.Logger) (dataplane.DataPlane, transport.Encap, error) {
	dp, err := userspace.New(userspace.Config{TUN: o.tun, Port: uint16(o.natPort)}, log)
	if err != nil {
		return nil, nil, err
	}
	return dp, userspaceEncap{dp}, nil
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
