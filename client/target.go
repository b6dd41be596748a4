package client

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// DefaultSocket is where mifsecd listens unless told otherwise.
const DefaultSocket = "/run/mifsec/mifsec.sock"

// Network is the transport a Target uses.
type Network int

const (
	// Unix is a unix domain socket; the daemon authorises by file mode.
	Unix Network = iota + 1
	// TCP is a TCP address; it needs mutual TLS or, for loopback only,
	// WithInsecureLoopback.
	TCP
)

// String returns "unix" or "tcp".
func (n Network) String() string {
	switch n {
	case Unix:
		return "unix"
	case TCP:
		return "tcp"
	}
	return fmt.Sprintf("Network(%d)", int(n))
}

// Target is a parsed daemon address.
type Target struct {
	Network Network
	// Address is the socket path for Unix, host:port for TCP.
	Address string
}

// String returns the target in the form ParseTarget accepts.
func (t Target) String() string {
	if t.Network == Unix {
		if strings.HasPrefix(t.Address, "/") {
			return "unix://" + t.Address
		}
		return "unix:" + t.Address
	}
	return t.Address
}

// TargetError reports a daemon address that cannot be used.
type TargetError struct {
	Target string
	Reason string
}

func (e *TargetError) Error() string {
	return fmt.Sprintf("bad target %q: %s", e.Target, e.Reason)
}

// ParseTarget accepts a unix socket path (`/run/mifsec/mifsec.sock`,
// `./mifsec.sock`), `unix:///abs/path`, `unix:rel/path`, or `host:port`
// (IPv6 literals in brackets). An empty target means DefaultSocket.
func ParseTarget(s string) (Target, error) {
	switch {
	case s == "":
		return Target{Network: Unix, Address: DefaultSocket}, nil
	case strings.HasPrefix(s, "unix://"):
		p := strings.TrimPrefix(s, "unix://")
		if !strings.HasPrefix(p, "/") {
			// unix://host/path has an authority; only the local host exists here.
			return Target{}, &TargetError{s, "unix:// needs an absolute path (unix:///path)"}
		}
		return Target{Network: Unix, Address: p}, nil
	case strings.HasPrefix(s, "unix:"):
		p := strings.TrimPrefix(s, "unix:")
		if p == "" {
			return Target{}, &TargetError{s, "empty socket path"}
		}
		return Target{Network: Unix, Address: p}, nil
	case strings.HasPrefix(s, "/"):
		return Target{Network: Unix, Address: s}, nil
	case strings.Contains(s, "://"):
		return Target{}, &TargetError{s, "unknown scheme (want a socket path, unix:///path or host:port)"}
	case strings.HasPrefix(s, "."), strings.Contains(s, "/"):
		return Target{Network: Unix, Address: s}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Target{}, &TargetError{s, "not a socket path nor host:port"}
	}
	if host == "" {
		return Target{}, &TargetError{s, "empty host"}
	}
	if pn, ok := parsePort(port); !ok || pn == 0 {
		return Target{}, &TargetError{s, fmt.Sprintf("bad port %q", port)}
	}
	return Target{Network: TCP, Address: s}, nil
}

func parsePort(p string) (int, bool) {
	if p == "" || len(p) > 5 {
		return 0, false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= 65535
}

// isLoopback reports whether a TCP target's host is `localhost` or a
// loopback IP literal. Other names are not resolved: what a name resolves to
// can change between this check and the dial.
func (t Target) isLoopback() bool {
	host, _, err := net.SplitHostPort(t.Address)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
