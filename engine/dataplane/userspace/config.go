package userspace

import (
	"net/netip"
	"runtime"
	"strconv"

	"github.com/mifsec/mifsec/engine/esp"
)

// Config of a userspace data plane.
type Config struct {
	// TUN is the name of the TUN link to create; empty means "mifsec%d".
	TUN string
	// MTU of the TUN link (inner packets); 0 means DefaultMTU.
	MTU int
	// Addresses assigned to the TUN link and Routes sent into it.
	Addresses []netip.Prefix
	Routes    []netip.Prefix
	// Listen lists local outer addresses to open UDP sockets on at start;
	// AddSA and UpdateSA open others on demand. Port 0 means Port.
	Listen []netip.AddrPort
	// Port is the UDP port of outer addresses given without one; 0 means
	// 4500 (RFC 3948 §2).
	Port uint16
	// DisableOffload turns off the virtio-net offloads of the TUN (TSO/USO
	// superpackets, coalesced writes) and UDP GSO/GRO.
	DisableOffload bool
	// Workers is the number of crypto goroutines; 0 means GOMAXPROCS.
	Workers int
	// NetNS is the path of a network namespace (such as
	// /var/run/netns/NAME) in which the TUN and every socket are created;
	// empty means the caller's.
	NetNS string
	// EventBuffer is the capacity of Events(); 0 means 256. Events that find
	// it full are dropped and counted (Stats).
	EventBuffer int
}

// DefaultMTU leaves room for outer IPv4, UDP and ESP overhead in a 1500-byte
// underlay.
const DefaultMTU = 1400

// ConfigError reports an invalid Config or SA.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string { return "userspace: invalid " + e.Field + ": " + e.Reason }

func (c *Config) withDefaults() (Config, error) {
	d := *c
	if d.TUN == "" {
		d.TUN = "mifsec%d"
	}
	if d.MTU == 0 {
		d.MTU = DefaultMTU
	}
	if d.MTU < 576 || d.MTU > 9000 {
		return d, &ConfigError{Field: "mtu", Reason: strconv.Itoa(d.MTU) + " is outside 576..9000"}
	}
	if d.Port == 0 {
		d.Port = esp.Port
	}
	if d.Workers <= 0 {
		d.Workers = runtime.GOMAXPROCS(0)
	}
	if d.EventBuffer <= 0 {
		d.EventBuffer = 256
	}
	for _, p := range d.Addresses {
		if !p.IsValid() {
			return d, &ConfigError{Field: "addresses", Reason: "invalid prefix"}
		}
	}
	for _, p := range d.Routes {
		if !p.IsValid() {
			return d, &ConfigError{Field: "routes", Reason: "invalid prefix"}
		}
	}
	for _, a := range d.Listen {
		if !a.Addr().IsValid() {
			return d, &ConfigError{Field: "listen", Reason: "invalid address"}
		}
	}
	return d, nil
}

// withPort fills in the default port.
func (c *Config) withPort(a netip.AddrPort) netip.AddrPort {
	if a.Port() == 0 {
		return netip.AddrPortFrom(a.Addr().Unmap(), c.Port)
	}
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
