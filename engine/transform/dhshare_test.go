package transform

import (
	"bytes"
	"sync"
	"testing"

	"github.com/mifsec/mifsec/engine/ike"
)

func TestSharedDH(t *testing.T) {
	for _, g := range []ike.GroupID{ike.GroupCurve25519, ike.GroupECP256, ike.GroupMODP2048} {
		t.Run(g.String(), func(t *testing.T) {
			own, err := GenerateDH(g, nil)
			if err != nil {
				t.Fatal(err)
			}
			s := ShareDH(own)
			if s.Group() != g {
				t.Fatalf("group %v", s.Group())
			}
			peer1, _ := GenerateDH(g, nil)
			peer2, _ := GenerateDH(g, nil)
			h1, ok1 := s.Handle()
			h2, ok2 := s.Handle()
			if !ok1 || !ok2 || s.Handles() != 2 {
				t.Fatalf("handles: %v %v %d", ok1, ok2, s.Handles())
			}
			if !bytes.Equal(h1.PublicValue(), own.PublicValue()) || h1.Group() != g {
				t.Fatal("a handle has another public value")
			}
			// Both handles agree with their peers: one private value, two exchanges.
			for _, c := range []struct{ h, p *DHKey }{{h1, peer1}, {h2, peer2}} {
				a, err := c.h.SharedSecret(c.p.PublicValue())
				if err != nil {
					t.Fatal(err)
				}
				b, err := c.p.SharedSecret(own.PublicValue())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(a.Bytes(), b.Bytes()) {
					t.Fatal("shared secrets differ")
				}
			}
			// A destroyed handle stops working, twice is harmless.
			h1.Destroy()
			h1.Destroy()
			if _, err := h1.SharedSecret(peer1.PublicValue()); err == nil {
				t.Fatal("a destroyed handle still agrees")
			}
			if s.Handles() != 1 {
				t.Fatalf("handles after one Destroy: %d", s.Handles())
			}
			// Retired with a handle out: no new handles, the live one works,
			// the private value goes with it.
			s.Retire()
			if _, ok := s.Handle(); ok {
				t.Fatal("a retired pair gave a handle")
			}
			if _, err := h2.SharedSecret(peer2.PublicValue()); err != nil {
				t.Fatalf("live handle of a retired pair: %v", err)
			}
			if _, err := own.SharedSecret(peer1.PublicValue()); err != nil {
				t.Fatalf("pair cleared while a handle was out: %v", err)
			}
			h2.Destroy()
			if _, err := own.SharedSecret(peer1.PublicValue()); err == nil {
				t.Fatal("the private value outlived its last handle")
			}
		})
	}
}

func TestSharedDHRetireIdle(t *testing.T) {
	own, _ := GenerateDH(ike.GroupCurve25519, nil)
	peer, _ := GenerateDH(ike.GroupCurve25519, nil)
	s := ShareDH(own)
	s.Retire()
	if _, err := own.SharedSecret(peer.PublicValue()); err == nil {
		t.Fatal("an idle retired pair was not cleared")
	}
}

// Handles taken and destroyed on several goroutines while the pair is
// retired (go test -race).
func TestSharedDHConcurrent(t *testing.T) {
	own, _ := GenerateDH(ike.GroupCurve25519, nil)
	peer, _ := GenerateDH(ike.GroupCurve25519, nil)
	s := ShareDH(own)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				h, ok := s.Handle()
				if !ok {
					return
				}
				if _, err := h.SharedSecret(peer.PublicValue()); err != nil {
					t.Error(err)
				}
				h.Destroy()
			}
		}()
	}
	s.Retire()
	wg.Wait()
	if s.Handles() != 0 {
		t.Fatalf("handles left: %d", s.Handles())
	}
	if _, err := own.SharedSecret(peer.PublicValue()); err == nil {
		t.Fatal("not cleared after the last handle")
	}
}
