// Package dataplane defines the contract between the engine and the packet path.
//
// Two implementations satisfy it: userspace (TUN + ESP in Go, engine/esp) and xfrm
// (the kernel's IPsec through netlink). The engine installs one SA per direction
// per Child SA, each with its own outer addresses, so every Child SA can live on
// its own path (DESIGN.md §1 G1), and policies that map traffic selectors to SAs.
// A steering hook decides, per flow, which outbound SA of a policy carries it.
//
// This package must not import gen/, server/, grpc or protobuf.
package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Direction of an SA or policy.
type Direction uint8

const (
	In Direction = iota + 1
	Out
)

func (d Direction) String() string {
	switch d {
	case In:
		return "in"
	case Out:
		return "out"
	}
	return "unknown"
}

// Mode is the IPsec mode of an SA (RFC 4301 §4.1).
type Mode uint8

const (
	Tunnel Mode = iota + 1
	Transport
)

func (m Mode) String() string {
	switch m {
	case Tunnel:
		return "tunnel"
	case Transport:
		return "transport"
	}
	return "unknown"
}

// Suite names the ESP algorithm combination of an SA.
type Suite uint8

const (
	SuiteAESGCM128           Suite = iota + 1 // RFC 4106, 16-byte ICV, key 16 + salt 4
	SuiteAESGCM256                            // RFC 4106, 16-byte ICV, key 32 + salt 4
	SuiteChaCha20Poly1305                     // RFC 7634, key 32 + salt 4
	SuiteAESCBC128HMACSHA256                  // RFC 3602 + RFC 4868 (128-bit ICV)
	SuiteAESCBC256HMACSHA256
	SuiteAESCBC128HMACSHA1 // RFC 3602 + RFC 2404 (96-bit ICV)
	SuiteAESCBC256HMACSHA384
	SuiteAESCBC256HMACSHA512
)

var suiteNames = map[Suite]string{
	SuiteAESGCM128:           "aes128gcm16",
	SuiteAESGCM256:           "aes256gcm16",
	SuiteChaCha20Poly1305:    "chacha20poly1305",
	SuiteAESCBC128HMACSHA256: "aes128-sha256",
	SuiteAESCBC256HMACSHA256: "aes256-sha256",
	SuiteAESCBC128HMACSHA1:   "aes128-sha1",
	SuiteAESCBC256HMACSHA384: "aes256-sha384",
	SuiteAESCBC256HMACSHA512: "aes256-sha512",
}

func (s Suite) String() string {
	if n, ok := suiteNames[s]; ok {
		return n
	}
	return "unknown"
}

// Keys holds the key material of one SA. It never prints its content.
type Keys struct {
	Enc   []byte // cipher key ‖ salt for AEAD suites
	Integ []byte // empty for AEAD suites
}

func (Keys) String() string   { return "[redacted]" }
func (Keys) GoString() string { return "[redacted]" }

// Zero overwrites the key bytes.
func (k *Keys) Zero() {
	clear(k.Enc)
	clear(k.Integ)
}

// Selector is one traffic selector (RFC 7296 §3.13.1, RFC 4301 §4.4.1).
type Selector struct {
	Prefix   netip.Prefix
	Protocol uint8  // 0 = any
	PortFrom uint16 // 0..65535 = any
	PortTo   uint16
}

// Limits are the lifetime limits of an SA in bytes and packets; 0 = none.
type Limits struct {
	SoftBytes, HardBytes     uint64
	SoftPackets, HardPackets uint64
}

// SA is one IPsec SA in one direction.
type SA struct {
	SPI       uint32
	Direction Direction
	Mode      Mode
	Suite     Suite
	Keys      Keys
	ESN       bool
	// Outer addresses as seen from this node: Local is ours.
	Local, Remote netip.AddrPort
	// Encap selects UDP encapsulation (RFC 3948); the ports of Local/Remote apply.
	Encap bool
	// ReplayWindow in packets (0 disables anti-replay; at most 4096). Inbound only.
	ReplayWindow int
	// TFCPadding pads outbound tunnel-mode packets (RFC 4303 §2.7).
	TFCPadding bool
	// Selectors that inner packets must match: for inbound the inner source
	// must be in Remote selectors and destination in Local selectors.
	LocalTS, RemoteTS []Selector
	Limits            Limits
	// Path identifies the path (local interface × remote address) this SA lives on.
	Path uint32
}

// AddrUpdate moves an SA to new outer addresses (MOBIKE, RFC 4555 §3.5).
type AddrUpdate struct {
	Local, Remote netip.AddrPort
	Encap         bool
}

// Action of a policy (RFC 4301 §4.4.1).
type Action uint8

const (
	Protect Action = iota + 1
	Bypass
	Discard
)

// Policy maps traffic selectors to the outbound SAs that may carry them.
type Policy struct {
	ID        uint64
	Direction Direction
	Local     []Selector
	Remote    []Selector
	Action    Action
	// SPIs lists the outbound SAs (Out) or accepted inbound SAs (In) of this
	// policy; the steering hook picks one per flow among the outbound ones.
	SPIs     []uint32
	Priority uint32
}

// Flow is the 5-tuple and DSCP of an inner packet.
type Flow struct {
	Src, Dst         netip.Addr
	Protocol         uint8
	SrcPort, DstPort uint16
	DSCP             uint8
}

// Steering picks the outbound SA (by SPI) for a flow among a policy's SAs.
// It runs on the packet path: it must not block or allocate. Returning 0
// means "no preference": the data plane uses the policy's first SA.
type Steering interface {
	Pick(f Flow, policy uint64, spis []uint32) uint32
}

// FlowObserver is optionally implemented by a Steering hook: the data plane
// then reports every inbound packet it accepts with its flow (as received)
// and the inbound SPI, so that return traffic can follow the path the flow
// came in on (DESIGN.md §4, gateway). It runs on the packet path: it must
// not block or allocate.
type FlowObserver interface {
	Observe(f Flow, spi uint32)
}

// Counters of one SA.
type Counters struct {
	Bytes, Packets uint64
	Drops          map[string]uint64 // by reason
	LastUsed       time.Time
}

// EventKind says what an Event reports.
type EventKind uint8

const (
	SoftExpired  EventKind = iota + 1 // soft lifetime (bytes/packets) reached: rekey
	HardExpired                       // hard lifetime reached: SA removed
	SeqExhausted                      // sequence number close to wrapping: rekey (RFC 4303 §3.3.3)
	Acquire                           // outbound packet without an SA (kernel ACQUIRE)
)

func (k EventKind) String() string {
	switch k {
	case SoftExpired:
		return "soft_expired"
	case HardExpired:
		return "hard_expired"
	case SeqExhausted:
		return "seq_exhausted"
	case Acquire:
		return "acquire"
	}
	return "unknown"
}

// Event is an asynchronous report from the data plane.
type Event struct {
	Kind      EventKind
	SPI       uint32
	Direction Direction
	Flow      Flow // for Acquire
	Time      time.Time
}

// Errors common to implementations.
var (
	ErrNotFound    = errors.New("dataplane: no such SA or policy")
	ErrExists      = errors.New("dataplane: SA or policy already exists")
	ErrUnsupported = errors.New("dataplane: not supported by this data plane")
)

// DataPlane is implemented by userspace and xfrm.
type DataPlane interface {
	// Name is "userspace" or "xfrm".
	Name() string
	AddSA(ctx context.Context, sa SA) error
	UpdateSA(ctx context.Context, spi uint32, dir Direction, u AddrUpdate) error
	DeleteSA(ctx context.Context, spi uint32, dir Direction) error
	AddPolicy(ctx context.Context, p Policy) error
	UpdatePolicy(ctx context.Context, p Policy) error
	DeletePolicy(ctx context.Context, id uint64) error
	SetSteering(s Steering)
	Counters(ctx context.Context, spi uint32, dir Direction) (Counters, error)
	// Events delivers expiry and acquire events; closed by Close.
	Events() <-chan Event
	Close() error
}
