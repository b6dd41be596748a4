package engine

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Writing leases.json does not hold the state: while the writer is stuck
// (a slow disk), the engine answers, newer snapshots replace waiting ones,
// and Close writes the last one.
func TestLeaseWriterOffState(t *testing.T) {
	dir := t.TempDir()
	e, _ := newEngine(t, dir)
	if _, err := e.CreatePool(tctx(t), "ue", PoolSpec{Ranges: []string{"10.45.0.0/24"}}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var mu sync.Mutex
	var saved []int // leases per written snapshot
	do(tctx(t), e, func(st *state) (struct{}, error) {
		real := st.leaseW.save
		st.leaseW.mu.Lock()
		st.leaseW.save = func(v any) error {
			<-release
			mu.Lock()
			saved = append(saved, len(v.(*persistedLeases).Pools["ue"]))
			mu.Unlock()
			return real(v)
		}
		st.leaseW.mu.Unlock()
		return struct{}{}, nil
	})
	lease := func(ids ...string) {
		do(tctx(t), e, func(st *state) (struct{}, error) {
			a := poolAdapter{p: st.pools["ue"], st: st}
			for _, id := range ids {
				a.Lease(id, false)
			}
			st.flushLeases() // as the timer does
			return struct{}{}, nil
		})
	}
	lease("@a") // the writer takes it and blocks
	time.Sleep(50 * time.Millisecond)
	lease("@b")       // waits
	lease("@c", "@d") // replaces the waiting one
	if _, err := e.Stats(tctx(t)); err != nil {
		t.Fatalf("the engine is held by the lease writer: %v", err)
	}
	close(release)
	e.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(saved) != 2 || saved[0] != 1 || saved[1] != 4 {
		t.Fatalf("snapshots written: %v, want [1 4]", saved)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "leases.json"))
	for _, id := range []string{"@a", "@b", "@c", "@d"} {
		if !strings.Contains(string(b), id) {
			t.Fatalf("leases.json lacks %s", id)
		}
	}
}

// A state directory written before leases.json (leases inside
// config.json) keeps its leases: restored, then moved to leases.json;
// leases outside the pool's ranges are dropped on restore.
func TestLeaseFileMigration(t *testing.T) {
	dir := t.TempDir()
	old := `{"version":1,"interfaces":[],"pools":[{"id":"ue","ranges":["10.45.0.0/24"],"create_time":"2026-01-01T00:00:00Z",
  "leases":[{"addr":"10.45.0.7","identity":"@old","lease_time":"2026-01-01T00:00:00Z"}]}]}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	e, _ := newEngine(t, dir)
	p, err := e.GetPool(tctx(t), "ue")
	if err != nil || len(p.Leases) != 1 || p.Leases[0].Identity != "@old" || p.Leases[0].Addr.String() != "10.45.0.7" {
		t.Fatalf("legacy leases not restored: %+v %v", p, err)
	}
	deadline := time.Now().Add(leaseFlushInterval + 5*time.Second)
	for !fileHas(t, dir, "@old") {
		if time.Now().After(deadline) {
			t.Fatal("legacy leases never written to leases.json")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A persist drops them from config.json.
	if _, err := e.CreatePool(tctx(t), "x", PoolSpec{Ranges: []string{"10.99.0.0/24"}}); err != nil {
		t.Fatal(err)
	}
	e.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if strings.Contains(string(b), "@old") {
		t.Fatal("config.json still carries leases")
	}
	// Restart: from leases.json. A lease outside the ranges goes.
	lf := filepath.Join(dir, "leases.json")
	b, _ = os.ReadFile(lf)
	b = []byte(strings.Replace(string(b), `"pools":{`, `"pools":{"gone": [{"addr":"10.1.1.1","identity":"@gone","lease_time":"2026-01-01T00:00:00Z"}],`, 1))
	b = []byte(strings.Replace(string(b), `"ue":[`, `"ue":[{"addr":"10.46.0.1","identity":"@outside","lease_time":"2026-01-01T00:00:00Z"},`, 1))
	if err := os.WriteFile(lf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e2, _ := newEngine(t, dir)
	p, err = e2.GetPool(tctx(t), "ue")
	if err != nil || len(p.Leases) != 1 || p.Leases[0].Identity != "@old" {
		t.Fatalf("after restart: %+v %v", p, err)
	}
}
