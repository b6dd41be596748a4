package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckOptions(t *testing.T) {
	cases := []struct {
		name string
		o    options
		want string // "" = accepted
	}{
		{"unix only", options{}, ""},
		{"mtls", options{listen: "[::]:7443", tlsCert: "c", tlsKey: "k", clientCA: "ca"}, ""},
		{"plaintext tcp refused", options{listen: "0.0.0.0:7443"}, "--listen needs --tls-cert"},
		{"plaintext loopback needs the flag", options{listen: "127.0.0.1:7443"}, "--listen needs --tls-cert"},
		{"insecure loopback v4", options{listen: "127.0.0.1:7443", insecureLoopback: true}, ""},
		{"insecure loopback v6", options{listen: "[::1]:7443", insecureLoopback: true}, ""},
		{"insecure on a public address", options{listen: "0.0.0.0:7443", insecureLoopback: true}, "not a loopback IP"},
		{"insecure by name", options{listen: "localhost:7443", insecureLoopback: true}, "not a loopback IP"},
		{"insecure with TLS", options{listen: "127.0.0.1:1", insecureLoopback: true, tlsCert: "c"}, "exclude each other"},
		{"bad address", options{listen: "7443", insecureLoopback: true}, "missing port"},
		{"half TLS", options{listen: ":7443", tlsCert: "c", tlsKey: "k"}, "--client-ca"},
		{"TLS without listen", options{tlsCert: "c"}, "need --listen"},
		{"role map without listen", options{roleMap: "r"}, "need --listen"},
	}
	for _, tc := range cases {
		err := checkOptions(&tc.o)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestListenUnix(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "api.sock")
	lis, err := listenUnix(p, "")
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %v, want 0660", fi.Mode().Perm())
	}
	// A live daemon is never displaced.
	if _, err := listenUnix(p, ""); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Errorf("second listener: %v", err)
	}
	// A stale socket (nobody listening) is replaced.
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	lis.Close()
	lis, err = listenUnix(p, "")
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	lis.Close()
	// A regular file is not a socket to remove.
	f := filepath.Join(dir, "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := listenUnix(f, ""); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: %v", err)
	}
	if _, err := listenUnix(filepath.Join(dir, "g.sock"), "no-such-group-mifsec"); err == nil || !strings.Contains(err.Error(), "--socket-group") {
		t.Errorf("unknown group: %v", err)
	}
	// An existing group: root's group 0.
	lis, err = listenUnix(filepath.Join(dir, "g.sock"), "root")
	if err != nil {
		t.Skipf("group root: %v", err)
	}
	lis.Close()
}
