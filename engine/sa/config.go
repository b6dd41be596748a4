package sa

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

// Role is the role of this node in an IKE SA: the original initiator
// (RFC 7296 §2.2) or the responder. An IKE rekey can swap it (§1.3.2).
type Role uint8

const (
	Initiator Role = iota + 1
	Responder
)

func (r Role) String() string {
	switch r {
	case Initiator:
		return "initiator"
	case Responder:
		return "responder"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// StartAction says when a configured Child SA is negotiated.
type StartAction uint8

const (
	// StartNow creates the Child SA with the IKE SA (IKE_AUTH for the first,
	// CREATE_CHILD_SA for the others).
	StartNow StartAction = iota
	// StartNone waits for a CreateChild command.
	StartNone
)

// ChildConfig describes one Child SA (a swanctl "children" section).
type ChildConfig struct {
	Name string
	// LocalTS and RemoteTS are our and the peer's traffic selectors. Empty
	// means "dynamic": our virtual IP or IKE address, and for the remote side
	// the address leased to the peer, or the peer's IKE address.
	LocalTS, RemoteTS []ike.TrafficSelector
	// Proposals are ESP proposals (transform.ParseProposals). A D-H group in
	// them asks for PFS in CREATE_CHILD_SA; IKE_AUTH never carries a KE.
	Proposals []ike.Proposal
	// Mode is tunnel (zero value) or transport (USE_TRANSPORT_MODE, §1.3.1).
	Mode  dataplane.Mode
	Start StartAction
	// RekeyTime and LifeTime override the Config lifetimes (0 = inherit).
	RekeyTime, LifeTime time.Duration
	// Limits are the data plane's byte and packet limits (soft = rekey).
	Limits dataplane.Limits
	// ReplayWindow of the inbound SA; 0 = 64, negative disables anti-replay.
	ReplayWindow int
	// TFCPadding pads outbound packets unless the peer said
	// ESP_TFC_PADDING_NOT_SUPPORTED (RFC 7296 §1.3.1).
	TFCPadding bool
}

// Auth is how we authenticate, and the default way to check the peer.
type Auth struct {
	// PSK authenticates with AUTH method 2 (RFC 7296 §2.15). It also checks a
	// peer that uses a shared key.
	PSK transform.Secret
	// Certs (end entity first) and Key authenticate with RFC 7427 digital
	// signatures (method 14) when PSK is empty.
	Certs []*x509.Certificate
	Key   crypto.Signer
	// Trust checks a peer's certificate chain (and fills our CERTREQ).
	Trust *transform.TrustStore
}

// String never shows the key material.
func (a Auth) String() string {
	return fmt.Sprintf("Auth{psk:%v certs:%d key:%v trust:%v}", a.PSK.Len() > 0, len(a.Certs), a.Key != nil, a.Trust != nil)
}

// GoString never shows the key material.
func (a Auth) GoString() string { return a.String() }

// Format never shows the key material, whatever the verb.
func (a Auth) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(a.String())) }

// PeerAuth is what a responder's Policy returns for a peer identity.
type PeerAuth struct {
	// ID is the identity to accept; zero copies the peer's IDi.
	ID Identity
	// PSK, when set, replaces Config.Auth.PSK for this peer, both ways.
	PSK transform.Secret
	// Trust, when set, replaces Config.Auth.Trust for this peer.
	Trust *transform.TrustStore
}

// AddressPool hands out virtual IPs to peers (responder, RFC 7296 §2.19).
// The glue implements it. Lease for an identity that already holds an
// address of that family gives the same address and counts one more
// holder; Release gives back one holder's use (an identity's IKE SAs share
// its address: one per path, a re-authentication, RFC 7791 clones).
type AddressPool interface {
	Lease(peerID string, v6 bool) (netip.Addr, error)
	Release(peerID string, addr netip.Addr)
}

// SPIAllocator hands out inbound ESP SPIs: random, non-zero, unique on this
// node (RFC 4303 §2.1). The glue implements it.
type SPIAllocator interface {
	AllocSPI() (uint32, error)
	ReleaseSPI(spi uint32)
}

// DHSource makes D-H key pairs. A pair it returns must be fresh, never
// handed out before, and is the caller's to Destroy.
type DHSource interface {
	GenerateDH(g ike.GroupID, rng io.Reader) (*transform.DHKey, error)
}

// ReusingDHSource is a DHSource that answers IKE_SA_INIT requests with
// pairs it may reuse for several of them (RFC 7296 §2.12): InitResponderDH
// can return a handle of a shared pair (transform.SharedDH), still the
// caller's to Destroy. Only the responder's IKE_SA_INIT takes it: the
// shared secret is computed at once; initiators and CREATE_CHILD_SA (PFS)
// keep fresh pairs.
type ReusingDHSource interface {
	DHSource
	InitResponderDH(g ike.GroupID, rng io.Reader) (*transform.DHKey, error)
}

// VirtualIP is the initiator's CP request (RFC 7296 §2.19).
type VirtualIP struct {
	IPv4, IPv6 bool // ask for INTERNAL_IP4_ADDRESS / INTERNAL_IP6_ADDRESS
	DNS        bool // ask for INTERNAL_IP4_DNS / INTERNAL_IP6_DNS
	PCSCF      bool // ask for P_CSCF_IP4/6_ADDRESS (RFC 7651)
}

// Retransmit is the request retransmission schedule (RFC 7296 §2.1):
// timeout k = Timeout * Factor^k for k = 0..Tries; after the last the
// exchange fails. Defaults are strongSwan's: 4 s, 1.8, 5 (about 165 s).
type Retransmit struct {
	Timeout time.Duration
	Factor  float64
	Tries   int
}

// Lifetimes of the IKE SA and (defaults of) the Child SAs. A rekey time is
// the soft limit, reduced by a random part of Jitter (RFC 7296 §2.8.1);
// a life time is the hard limit. Zero disables a limit.
type Lifetimes struct {
	IKERekey, IKELife     time.Duration
	ChildRekey, ChildLife time.Duration
	Jitter                time.Duration
	// Reauth, when set, re-authenticates make-before-break: a new IKE SA is
	// set up (Output.Spawn) and this one is deleted once it is up.
	Reauth time.Duration
}

// Config is one connection as this package needs it. Machines keep a
// pointer to it and only read it: one Config can serve every IKE SA of a
// connection, and must not change while they use it.
type Config struct {
	Name string
	// Local and Remote are the addresses an initiator starts from.
	Local, Remote netip.AddrPort

	LocalID  Identity // zero: our IP address, or our certificate's subject
	RemoteID Identity // zero: %any
	Auth     Auth
	// Policy, for responders serving many peers, finds how to check the
	// peer from its IDi. Nil uses RemoteID and Auth.
	Policy func(id Identity) (*PeerAuth, error)

	IKEProposals []ike.Proposal
	Children     []ChildConfig

	VirtualIP VirtualIP   // initiator
	Pool      AddressPool // responder
	DNS       []netip.Addr
	PCSCF     []netip.Addr
	// RequireCP makes a responder with a Pool refuse Child SAs to peers that
	// sent no CP request (FAILED_CP_REQUIRED, RFC 7296 §3.10.1).
	RequireCP bool

	SPIs SPIAllocator

	DPD time.Duration // liveness check when idle this long; 0 = never
	// DPDTimeout declares the peer dead when a liveness check stays
	// unanswered this long (RFC 7296 §2.4 leaves the schedule to us); the
	// check is retransmitted at least three times within it. 0 = the whole
	// Retransmit schedule.
	DPDTimeout time.Duration
	Retransmit Retransmit
	Lifetimes  Lifetimes
	// FragmentMTU is the largest IP datagram of a fragmented message (RFC
	// 7383 §2.5.1); 0 = 1280. NoFragmentation stops us announcing support.
	FragmentMTU     int
	NoFragmentation bool

	MOBIKE bool // announce MOBIKE_SUPPORTED (RFC 4555 §3.2)
	Clone  bool // announce CLONE_IKE_SA_SUPPORTED (RFC 7791)
	// AdditionalAddrs are our other usable addresses, announced in IKE_AUTH
	// with MOBIKE (RFC 4555 §3.4) and tried when the path fails (§3.11).
	AdditionalAddrs []netip.Addr
	// AcceptAddress is the MOBIKE responder's policy for a new address pair
	// (RFC 4555 §3.5: UNACCEPTABLE_ADDRESSES when false); nil accepts all.
	AcceptAddress func(local, remote netip.AddrPort) bool
	// NoNATsAllowed forbids moving onto a path with a NAT (RFC 4555 §3.9):
	// a path test or an UNEXPECTED_NAT_DETECTED answer that shows a NAT
	// fails the move instead of falling back to UDP encapsulation.
	NoNATsAllowed bool
	// NoInitialContact omits INITIAL_CONTACT from IKE_AUTH (send it only
	// on the first IKE SA to a peer, PROTOCOL.md P5).
	NoInitialContact bool

	// HalfOpenTimeout drops a responder SA whose IKE_AUTH never comes; 0 = 30 s.
	HalfOpenTimeout time.Duration
	// RekeyedDelete is how long a replaced Child SA's inbound half keeps
	// accepting packets after its DELETE exchange (RFC 7296 §2.8,
	// PROTOCOL.md P9, strongSwan delete_rekeyed_delay), and how long after
	// the retransmissions we wait for the peer to delete an SA it
	// replaced before we do; 0 = 5 s.
	RekeyedDelete time.Duration

	// DH makes the D-H key pairs of our KE payloads; nil makes them
	// inline from the machine's randomness. The glue may hand out pairs
	// made ahead of time on a worker goroutine, so that key generation
	// stays off its state goroutine (DESIGN.md §3).
	DH DHSource
	// Rand is the random source (SPIs, nonces, D-H keys, signatures) of
	// the machines made from this Config whose constructor gets none or
	// this one; nil: crypto/rand. A machine given another keeps its own.
	Rand io.Reader

	// Path is copied into every dataplane.SA.
	Path uint32
	// Logger is optional; keys are snake_case, secrets never logged.
	Logger hclog.Logger
}

// ConfigError reports an unusable Config.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string { return "sa: config " + e.Field + ": " + e.Reason }

// check validates c. A machine keeps c itself, not a copy (one Config
// may serve every IKE SA of a connection): c must not change while
// machines use it. Defaults apply where fields are read.
func (c *Config) check(initiator bool) error {
	if c == nil {
		return &ConfigError{Field: "config", Reason: "nil"}
	}
	if len(c.IKEProposals) == 0 {
		return &ConfigError{Field: "ike_proposals", Reason: "empty"}
	}
	for _, p := range c.IKEProposals {
		if p.Protocol != ike.ProtoIKE {
			return &ConfigError{Field: "ike_proposals", Reason: "proposal for " + p.Protocol.String()}
		}
	}
	if c.Auth.PSK.Len() == 0 && (len(c.Auth.Certs) == 0 || c.Auth.Key == nil) && (initiator || c.Policy == nil) {
		return &ConfigError{Field: "auth", Reason: "neither a PSK nor a certificate with its key"}
	}
	if c.SPIs == nil {
		return &ConfigError{Field: "spis", Reason: "no SPI allocator"}
	}
	for i := range c.Children {
		ch := &c.Children[i]
		if len(ch.Proposals) == 0 {
			return &ConfigError{Field: "children[" + ch.Name + "].proposals", Reason: "empty"}
		}
		for _, p := range ch.Proposals {
			if p.Protocol != ike.ProtoESP {
				return &ConfigError{Field: "children[" + ch.Name + "].proposals", Reason: "proposal for " + p.Protocol.String()}
			}
		}
	}
	if c.DPDTimeout < 0 {
		return &ConfigError{Field: "dpd_timeout", Reason: "negative"}
	}
	return nil
}

// retransmit is the schedule with defaults (strongSwan's: 4 s, 1.8, 5).
func (c *Config) retransmit() Retransmit {
	r := c.Retransmit
	if r.Timeout <= 0 {
		r.Timeout = 4 * time.Second
	}
	if r.Factor < 1 {
		r.Factor = 1.8
	}
	if r.Tries <= 0 {
		r.Tries = 5
	}
	return r
}

// fragmentMTU is FragmentMTU, 1280 by default (RFC 7383 §2.5.1).
func (c *Config) fragmentMTU() int {
	if c.FragmentMTU <= 0 {
		return 1280
	}
	return c.FragmentMTU
}

func (c *Config) halfOpenTimeout() time.Duration {
	if c.HalfOpenTimeout <= 0 {
		return 30 * time.Second
	}
	return c.HalfOpenTimeout
}

func (c *Config) rekeyedDelete() time.Duration {
	if c.RekeyedDelete <= 0 {
		return 5 * time.Second
	}
	return c.RekeyedDelete
}

// mode is Mode, tunnel by default.
func (c *ChildConfig) mode() dataplane.Mode {
	if c.Mode == 0 {
		return dataplane.Tunnel
	}
	return c.Mode
}
