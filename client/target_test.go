package client

import (
	"errors"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		wantErr bool
	}{
		{"", Target{Unix, DefaultSocket}, false},
		{"/run/mifsec/mifsec.sock", Target{Unix, "/run/mifsec/mifsec.sock"}, false},
		{"./m.sock", Target{Unix, "./m.sock"}, false},
		{"run/m.sock", Target{Unix, "run/m.sock"}, false},
		{"unix:///tmp/x.sock", Target{Unix, "/tmp/x.sock"}, false},
		{"unix:rel.sock", Target{Unix, "rel.sock"}, false},
		{"127.0.0.1:7000", Target{TCP, "127.0.0.1:7000"}, false},
		{"[::1]:7000", Target{TCP, "[::1]:7000"}, false},
		{"gw.example.net:443", Target{TCP, "gw.example.net:443"}, false},
		{"unix://host/tmp/x.sock", Target{}, true},
		{"unix:", Target{}, true},
		{"dns:host:1", Target{}, true},
		{"http://host:80", Target{}, true},
		{"host", Target{}, true},
		{":7000", Target{}, true},
		{"host:0", Target{}, true},
		{"host:65536", Target{}, true},
		{"host:http", Target{}, true},
		{"::1:7000", Target{}, true},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if tt.wantErr {
			var te *TargetError
			if !errors.As(err, &te) {
				t.Errorf("ParseTarget(%q) = %v, %v; want *TargetError", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseTarget(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestTargetLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:1", true},
		{"127.9.9.9:1", true},
		{"[::1]:1", true},
		{"localhost:1", true},
		{"LOCALHOST:1", true},
		{"10.0.0.1:1", false},
		{"[::2]:1", false},
		{"localhost.example.com:1", false},
	}
	for _, tt := range tests {
		if got := (Target{TCP, tt.addr}).isLoopback(); got != tt.want {
			t.Errorf("isLoopback(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestTargetStringRoundTrip(t *testing.T) {
	for _, in := range []string{"/a/b.sock", "unix:///a/b.sock", "127.0.0.1:9", "rel/b.sock", "unix:b.sock", "./b.sock"} {
		tg, err := ParseTarget(in)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseTarget(tg.String())
		if err != nil || back != tg {
			t.Errorf("%q: String() = %q parses to %v, %v", in, tg.String(), back, err)
		}
	}
}

// FuzzParseTarget: any input gives a Target or a *TargetError, and a Target
// survives String() and ParseTarget again.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"", "/run/m.sock", "unix:///x", "unix:x", "[::1]:1", "h:65535", "a://b", "unix://h/p", ":1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			var te *TargetError
			if !errors.As(err, &te) {
				t.Fatalf("%q: error %T %v", s, err, err)
			}
			return
		}
		back, err := ParseTarget(tg.String())
		if err != nil || back != tg {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, tg, tg.String(), back, err)
		}
	})
}
