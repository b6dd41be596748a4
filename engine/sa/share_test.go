package sa

import (
	"testing"
	"unsafe"
)

// Role and PeerID give what Info gives without the snapshot, before and
// after IKE_AUTH; an idle session keeps no rare state; the suite's name
// in Info is one string for every session of that suite, not one per IKE
// SA.
func TestCheapAccessors(t *testing.T) {
	ini, resp := pskPair(t)
	p := newPump(t, ini, resp, 1)
	check := func(step string) {
		t.Helper()
		for _, n := range []*node{p.i, p.r} {
			if n.ike == nil {
				continue
			}
			in := n.ike.Info()
			if got := n.ike.Role(); got != in.Role {
				t.Errorf("%s: %s Role %v, Info %v", step, n.name, got, in.Role)
			}
			if got := n.ike.PeerID(); got.String() != in.RemoteID.String() {
				t.Errorf("%s: %s PeerID %v, Info %v", step, n.name, got, in.RemoteID)
			}
		}
	}
	check("started")
	p.run(func() bool { return up(p.i)() && up(p.r)() })
	check("up")
	if got, want := p.r.ike.PeerID().String(), "@client.example"; got != want {
		t.Fatalf("responder's peer %q, want %q", got, want)
	}
	if p.i.ike.Role() != Initiator || p.r.ike.Role() != Responder {
		t.Fatalf("roles %v %v", p.i.ike.Role(), p.r.ike.Role())
	}
	// Nothing queued, reassembled or retiring: no rare session state.
	p.settle()
	if p.i.ike.cur.x != nil || p.r.ike.cur.x != nil {
		t.Fatalf("idle sessions keep rare state: %+v %+v", p.i.ike.cur.x, p.r.ike.cur.x)
	}
	a, b := p.i.ike.Info().Algorithms, p.r.ike.Info().Algorithms
	if a == "" || a != b {
		t.Fatalf("algorithms %q and %q", a, b)
	}
	if unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatal("each session made its own copy of the suite's name")
	}
}
