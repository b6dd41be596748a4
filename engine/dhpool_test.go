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
	p := newDHPool(4)
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
