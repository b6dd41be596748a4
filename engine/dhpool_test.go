package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
)

// The D-H pool stocks a group once asked for, hands out each pair once,
// makes pairs inline when dry or for groups it cannot make, and destroys
// what is left when stopped.
func TestDHPool(t *testing.T) {
	p := newDHPool(4, -1)
	p.start()
	first, err := p.GenerateDH(ike.GroupCurve25519, nil) // dry: inline, and asks for a refill
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		n := len(p.ready[ike.GroupCurve25519])
		p.mu.Unlock()
		if n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool holds %d pairs, want 4", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	seen := [][]byte{first.PublicValue()}
	for range 6 { // 4 pooled, then inline or refilled
		k, err := p.GenerateDH(ike.GroupCurve25519, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range seen {
			if bytes.Equal(s, k.PublicValue()) {
				t.Fatal("a pair was handed out twice")
			}
		}
		seen = append(seen, k.PublicValue())
	}
	cases := []struct {
		name  string
		group ike.GroupID
		ok    bool
	}{
		{"ecp256 inline", ike.GroupECP256, true},
		{"unknown group", ike.GroupID(60000), false},
	}
	for _, tc := range cases {
		if _, err := p.GenerateDH(tc.group, nil); (err == nil) != tc.ok {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	p.stop()
	p.mu.Lock()
	left := len(p.ready)
	p.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d groups left after stop", left)
	}
	// Stopped: still usable, inline.
	if _, err := p.GenerateDH(ike.GroupCurve25519, nil); err != nil {
		t.Fatal(err)
	}
}

// IKE_SA_INIT responses share one pair per group for the reuse period
// (RFC 7296 §2.12); other exchanges keep fresh pairs; a pair past its
// period, idle or not, is retired; no reuse when turned off.
func TestDHPoolReuse(t *testing.T) {
	g := ike.GroupCurve25519
	now := time.Unix(1000, 0)
	p := newDHPool(2, 0)
	if p.reuse != DefaultDHReuse {
		t.Fatalf("default reuse %v", p.reuse)
	}
	p.now = func() time.Time { return now }
	p.start()
	defer p.stop()
	h1, err := p.InitResponderDH(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(DefaultDHReuse / 2)
	h2, _ := p.InitResponderDH(g, nil)
	if !bytes.Equal(h1.PublicValue(), h2.PublicValue()) {
		t.Fatal("two responses within the period got two pairs")
	}
	fresh, _ := p.GenerateDH(g, nil)
	if bytes.Equal(fresh.PublicValue(), h1.PublicValue()) {
		t.Fatal("GenerateDH handed out the shared pair")
	}
	p.mu.Lock()
	first := p.shared[g].pair
	p.mu.Unlock()
	if first.Handles() != 2 {
		t.Fatalf("handles %d", first.Handles())
	}
	// Past the period: a new pair; the old one is retired and waits for
	// its last handle.
	now = now.Add(DefaultDHReuse)
	h3, _ := p.InitResponderDH(g, nil)
	if bytes.Equal(h3.PublicValue(), h1.PublicValue()) {
		t.Fatal("a pair was reused past its period")
	}
	if _, ok := first.Handle(); ok {
		t.Fatal("the old pair still gives handles")
	}
	peer, _ := p.GenerateDH(g, nil)
	if _, err := h1.SharedSecret(peer.PublicValue()); err != nil {
		t.Fatalf("a handle of a retired pair: %v", err)
	}
	h1.Destroy()
	h2.Destroy()
	if first.Handles() != 0 {
		t.Fatal("handles left")
	}
	// Idle past the period: expire retires it without a new request.
	p.mu.Lock()
	second := p.shared[g].pair
	p.mu.Unlock()
	now = now.Add(DefaultDHReuse)
	p.expire()
	p.mu.Lock()
	n := len(p.shared)
	p.mu.Unlock()
	if _, ok := second.Handle(); ok || n != 0 {
		t.Fatalf("idle pair not retired (%d shared)", n)
	}
	h3.Destroy()

	off := newDHPool(2, -1)
	a, _ := off.InitResponderDH(g, nil)
	b, _ := off.InitResponderDH(g, nil)
	if bytes.Equal(a.PublicValue(), b.PublicValue()) {
		t.Fatal("reuse off, yet a pair was reused")
	}
	off.stop()
}

// The expiry timer retires a shared pair on its own.
func TestDHPoolExpiryTimer(t *testing.T) {
	p := newDHPool(1, 20*time.Millisecond)
	h, err := p.InitResponderDH(ike.GroupCurve25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Destroy()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		n := len(p.shared)
		p.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("shared pair never expired")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.stop()
}
