package config

import (
	"os"
	"path/filepath"
	"testing"
)

type doc struct {
	Version int      `json:"version"`
	Names   []string `json:"names"`
}

func TestStoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir, "config.json")
	if err != nil {
		t.Fatal(err)
	}
	var d doc
	if found, err := s.Load(&d); err != nil || found {
		t.Fatalf("empty store: found=%v err=%v", found, err)
	}
	want := doc{Version: 1, Names: []string{"ran", "wlan"}}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	if found, err := s.Load(&d); err != nil || !found || len(d.Names) != 2 || d.Names[1] != "wlan" {
		t.Fatalf("load: found=%v err=%v doc=%+v", found, err, d)
	}
	// Compact: one line, same document.
	want.Names = append(want.Names, "wired")
	if err := s.SaveCompact(want); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(s.Path())
	if string(b) != `{"version":1,"names":["ran","wlan","wired"]}`+"\n" {
		t.Fatalf("compact document %q", b)
	}
	if found, err := s.Load(&d); err != nil || !found || len(d.Names) != 3 {
		t.Fatalf("load compact: found=%v err=%v doc=%+v", found, err, d)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want 1", len(ents))
	}
}

func TestStoreCorrupt(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, "config.json")
	os.WriteFile(s.Path(), []byte("{not json"), 0o600)
	var d doc
	if _, err := s.Load(&d); err == nil {
		t.Fatal("corrupt state loaded without error")
	}
}
