package engine

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Leases taken through the IKE path are written in batches: not on every
// lease, but within leaseFlushInterval and on Close.
func TestLeasePersistBatched(t *testing.T) {
	cases := []struct {
		name  string
		close bool // Close the engine instead of waiting for the timer
	}{{"timer", false}, {"close", true}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			e, _ := newEngine(t, dir)
			if _, err := e.CreatePool(tctx(t), "ue", PoolSpec{Ranges: []string{"10.45.0.0/24"}}); err != nil {
				t.Fatal(err)
			}
			dirty, _ := do(tctx(t), e, func(st *state) (bool, error) {
				a := poolAdapter{p: st.pools["ue"], st: st}
				for _, id := range []string{"@alice", "@bob"} {
					if _, err := a.Lease(id, false); err != nil {
						return false, err
					}
				}
				return st.leasesDirty, nil
			})
			if !dirty {
				t.Fatal("leases not marked dirty")
			}
			if fileHas(t, dir, "@alice") {
				t.Fatal("lease written at once")
			}
			if tc.close {
				e.Close()
				if !fileHas(t, dir, "@alice") || !fileHas(t, dir, "@bob") {
					t.Fatal("leases not written on Close")
				}
				return
			}
			deadline := time.Now().Add(leaseFlushInterval + 5*time.Second)
			for !fileHas(t, dir, "@bob") {
				if time.Now().After(deadline) {
					t.Fatal("leases never flushed")
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func fileHas(t *testing.T, dir, s string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "leases.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), s)
}

// The free-address hint gives the same addresses as a scan from the
// start: in order, skipping leased ones, wrapping to freed ones after
// UpdatePool forgot leases, and falling back to the oldest offline lease.
func TestLeaseHint(t *testing.T) {
	e, _ := newEngine(t, t.TempDir())
	if _, err := e.CreatePool(tctx(t), "ue", PoolSpec{Ranges: []string{"10.45.0.1-10.45.0.4", "10.46.0.1-10.46.0.2"}}); err != nil {
		t.Fatal(err)
	}
	got, _ := do(tctx(t), e, func(st *state) ([]string, error) {
		pl := st.pools["ue"]
		var out []string
		lease := func(id string) {
			a, err := pl.lease(id, false, time.Now())
			if err != nil {
				out = append(out, id+"="+err.Error())
				return
			}
			out = append(out, id+"="+a.String())
		}
		for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
			lease(id)
		}
		// Forget c and d as a range change does: the hint restarts.
		for _, id := range []string{"c", "d"} {
			l := pl.leases[leaseKey{id, false}]
			delete(pl.leases, leaseKey{id, false})
			delete(pl.byAddr, l.Addr)
		}
		pl.hint = nil
		lease("g")
		lease("h")
		// Full: the oldest offline lease (a, released first) is reused.
		pl.release("b", netip.MustParseAddr("10.45.0.2"))
		pl.release("a", netip.MustParseAddr("10.45.0.1"))
		pl.leases[leaseKey{"a", false}].LeaseTime = time.Unix(1, 0)
		lease("i")
		return out, nil
	})
	want := []string{"a=10.45.0.1", "b=10.45.0.2", "c=10.45.0.3", "d=10.45.0.4", "e=10.46.0.1", "f=10.46.0.2",
		"g=10.45.0.3", "h=10.45.0.4", "i=10.45.0.1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

// BenchmarkLease is one new identity's lease in a pool already holding
// b.N leases (constant with the hint; linear before).
func BenchmarkLease(b *testing.B) {
	rs, err := validatePoolSpec(&PoolSpec{Ranges: []string{"10.0.0.0/8"}})
	if err != nil {
		b.Fatal(err)
	}
	p := &pool{ID: "ue", ranges: rs, leases: map[leaseKey]*Lease{}, byAddr: map[netip.Addr]*Lease{}}
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = "u" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String()
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := p.lease(ids[i], false, now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLeaseHolders: an identity's IKE SAs share its address (one per
// path, a re-authentication overlapping the old IKE SA, clones): each
// lease counts a holder and the lease stays online until the last
// returns it; another identity does not get it meanwhile, even from a
// full pool.
func TestLeaseHolders(t *testing.T) {
	rs, err := validatePoolSpec(&PoolSpec{Ranges: []string{"10.0.0.1-10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	p := &pool{ID: "ue", ranges: rs, leases: map[leaseKey]*Lease{}, byAddr: map[netip.Addr]*Lease{}}
	now := time.Now()
	a, err := p.lease("ue1", false, now)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := p.lease("ue1", false, now); err != nil || b != a {
		t.Fatalf("second IKE SA of ue1 got %v %v, want %v", b, err, a)
	}
	p.release("ue1", a)
	if l := p.leases[leaseKey{"ue1", false}]; !l.Online {
		t.Fatal("lease offline while ue1's other IKE SA uses it")
	}
	if b, err := p.lease("ue2", false, now); err == nil {
		t.Fatalf("ue2 got %v from a full pool while ue1 uses it", b)
	}
	p.release("ue1", a)
	if l := p.leases[leaseKey{"ue1", false}]; l.Online {
		t.Fatal("lease online after ue1's last IKE SA returned it")
	}
	if b, err := p.lease("ue2", false, now); err != nil || b != a {
		t.Fatalf("ue2 got %v %v once ue1 was offline, want %v", b, err, a)
	}
}
