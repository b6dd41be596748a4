package engine

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
	"github.com/mifsec/mifsec/engine/transport"
)

// floodInit is an IKE_SA_INIT request as a flooding host sends it: a
// fresh SPI, a proposal the gateway accepts, a random KE and nonce.
func floodInit(t *testing.T) []byte {
	t.Helper()
	props, err := transform.ParseProposals(DefaultIKEProposals[0], ike.ProtoIKE)
	if err != nil {
		t.Fatal(err)
	}
	ke, nonce, spi := make([]byte, 32), make([]byte, 32), make([]byte, 8)
	rand.Read(ke)
	rand.Read(nonce)
	rand.Read(spi)
	spi[0] |= 1 // never zero
	m := ike.Message{Header: ike.Header{SPIi: binary.BigEndian.Uint64(spi), Exchange: ike.IKESAInit, Flags: ike.FlagInitiator},
		Payloads: []ike.Payload{&ike.SA{Proposals: props}, &ike.KE{Group: ike.GroupCurve25519, Data: ke}, &ike.Nonce{Data: nonce}}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A flood of IKE_SA_INIT requests from many addresses: half-open SAs stop
// at the cookie threshold (RFC 7296 §2.6), the rest get COOKIE replies,
// Stats shows it, and a legitimate initiator still gets through (it
// returns the cookie).
func TestCookiesUnderFlood(t *testing.T) {
	ue, gw, w := pairOn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	gwTr := w.ends[netip.MustParseAddr("192.0.2.1")]
	const flood = 300
	for i := range flood {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}), 500)
		gwTr.in <- transport.Packet{Local: netip.MustParseAddrPort("192.0.2.1:500"), Remote: src, Data: floodInit(t)}
	}
	var st Stats
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if st, err = gw.Stats(ctx); err != nil {
			t.Fatal(err)
		}
		if st.IKEIn >= flood || time.Now().After(deadline) {
			break
		}
	}
	if st.IKEIn < flood || st.HalfOpenIKESAs != 30 || !st.CookiesRequired || st.CookiesSent != flood-30 || st.IKESAs != 30 {
		t.Fatalf("after the flood: %+v", st)
	}
	if _, err := ue.InitiateConnection(ctx, "gw", ""); err != nil {
		t.Fatalf("legitimate initiator: %v", err)
	}
	after, err := gw.Stats(ctx)
	if err != nil || after.CookiesSent != st.CookiesSent+1 || after.HandshakesOK != 1 || after.HalfOpenIKESAs != 30 {
		t.Fatalf("after the legitimate handshake: %+v %v", after, err)
	}
}

// The connection's dpd.timeout bounds how long a dead peer takes to be
// declared dead, whatever the retransmission schedule (200 ms ×1.5, 4
// tries = 2.6 s here); the event says DPD_TIMEOUT.
func TestDPDTimeoutHonoured(t *testing.T) {
	ue, _, w := pairOn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := ue.UpdateConnection(ctx, "gw", ConnectionSpec{DPDInterval: 300 * time.Millisecond, DPDTimeout: 600 * time.Millisecond},
		[]string{"dpd"}); err != nil {
		t.Fatal(err)
	}
	sub, err := ue.Watch(ctx, WatchFilter{Categories: []Category{CategoryIKESA}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := ue.InitiateConnection(ctx, "gw", ""); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.drops = func(from, to netip.AddrPort) bool { return true }
	w.mu.Unlock()
	cut := time.Now()
	ev := waitEvent(t, sub, EventIKESADown)
	if took := time.Since(cut); ev.Reason != "dpd_timeout" || took > 1500*time.Millisecond {
		t.Fatalf("down after %v: %+v", took, ev)
	}
	st, err := ue.Stats(ctx)
	if err != nil || st.HandshakesOK != 1 || st.IKESAs != 0 || st.Watchers != 1 {
		t.Fatalf("stats %+v %v", st, err)
	}
}
