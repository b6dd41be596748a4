package sa

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
)

// Input is what Handle consumes: Datagram, Command, Tick or DataplaneEvent.
type Input interface{ input() }

// Datagram is one IKE message with its UDP addresses as seen from this node.
// Data excludes the non-ESP marker (RFC 3948 §2.2): the glue strips it on
// receipt and adds it when sending from or to port 4500.
type Datagram struct {
	Local, Remote netip.AddrPort
	Data          []byte
}

// CommandKind is an API verb addressed to one IKE SA.
type CommandKind uint8

const (
	// CmdInitiate creates the configured StartNow Child SAs that are not up.
	CmdInitiate CommandKind = iota + 1
	CmdCreateChild
	CmdRekeyChild
	CmdRekeyIKE
	CmdDeleteChild
	CmdTerminate
	CmdLiveness // a liveness check now (RFC 7296 §2.4)
	CmdReauthenticate
	CmdAnnounce // send our additional addresses (RFC 4555 §3.6)
	CmdMigrate  // move the IKE SA and its Child SAs (RFC 4555 §3.5)
	CmdProbe    // test a path without moving (RFC 4555 §3.10)
	CmdClone    // clone the IKE SA (RFC 7791)
	CmdSetPath  // the glue put the IKE SA on another path (Command.Path)
)

var commandNames = [...]string{"", "initiate", "create_child", "rekey_child", "rekey_ike", "delete_child", "terminate", "liveness", "reauthenticate",
	"announce", "migrate", "probe", "clone", "set_path"}

func (k CommandKind) String() string {
	if int(k) < len(commandNames) && k > 0 {
		return commandNames[k]
	}
	return fmt.Sprintf("command(%d)", uint8(k))
}

// Command is an API request. Child is for CmdCreateChild (nil: the
// configured child named Name); SPI names a Child SA by either of its SPIs
// for CmdRekeyChild and CmdDeleteChild. Addrs is the complete new set of
// our usable addresses other than the one in use (CmdAnnounce); Local and
// Remote are the address pair of CmdMigrate and CmdProbe, and of
// CmdAnnounce when our address in use is gone: the announcement then goes
// out on that pair (RFC 4555 §3.6: the responder picks it from its own
// addresses and the peer's). Path is CmdSetPath's data-plane path tag
// (Config.Path) for the Child SAs created from then on.
type Command struct {
	Kind  CommandKind
	Child *ChildConfig
	Name  string
	SPI   uint32

	Addrs         []netip.Addr
	Local, Remote netip.AddrPort
	Path          uint32
}

// Tick tells the machine that the Deadline it asked for has passed.
type Tick struct{}

// DataplaneEvent forwards an expiry report of one of our SAs.
type DataplaneEvent struct {
	Kind dataplane.EventKind
	SPI  uint32
}

func (Datagram) input()       {}
func (Command) input()        {}
func (Tick) input()           {}
func (DataplaneEvent) input() {}

// OpKind is a data-plane operation.
type OpKind uint8

const (
	OpAddSA OpKind = iota + 1
	OpUpdateSA
	OpDeleteSA
	OpAddPolicy
	OpUpdatePolicy
	OpDeletePolicy
)

var opNames = [...]string{"", "add_sa", "update_sa", "delete_sa", "add_policy", "update_policy", "delete_policy"}

func (k OpKind) String() string {
	if int(k) < len(opNames) && k > 0 {
		return opNames[k]
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// DataplaneOp is one call the glue makes on the data plane, in order:
// OpAddSA uses SA; OpUpdateSA uses SPI, Dir and Update; OpDeleteSA SPI and
// Dir; OpAddPolicy and OpUpdatePolicy use Policy; OpDeletePolicy PolicyID.
// SA.Keys holds key material: the glue zeroes it once applied.
type DataplaneOp struct {
	Kind     OpKind
	SA       dataplane.SA
	SPI      uint32
	Dir      dataplane.Direction
	Update   dataplane.AddrUpdate
	Policy   dataplane.Policy
	PolicyID uint64
}

func (o DataplaneOp) String() string {
	switch o.Kind {
	case OpAddSA:
		return fmt.Sprintf("%v spi=%08x dir=%v", o.Kind, o.SA.SPI, o.SA.Direction)
	case OpAddPolicy, OpUpdatePolicy:
		return fmt.Sprintf("%v id=%d dir=%v spis=%08x", o.Kind, o.Policy.ID, o.Policy.Direction, o.Policy.SPIs)
	case OpDeletePolicy:
		return fmt.Sprintf("%v id=%d", o.Kind, o.PolicyID)
	}
	return fmt.Sprintf("%v spi=%08x dir=%v", o.Kind, o.SPI, o.Dir)
}

// EventKind classifies an Event.
type EventKind uint8

const (
	EventIKEUp EventKind = iota + 1
	EventIKEDown
	EventIKERekeyed
	EventChildUp
	EventChildDown
	EventChildRekeyed
	EventChildFailed // a Child SA could not be created; the IKE SA lives on
	EventAuthFailed
	EventPeerCapabilities
	EventMigrated      // the IKE SA and its Child SAs moved (RFC 4555 §3.5)
	EventMigrateFailed // a move was refused or its path test failed; nothing moved
	EventProbe         // the answer to CmdProbe (RFC 4555 §3.10)
	EventPeerAddresses // the peer announced its addresses (RFC 4555 §3.6)
	EventCloneFailed   // CmdClone failed; the IKE SA lives on (RFC 7791)
)

var eventNames = [...]string{"", "ike_up", "ike_down", "ike_rekeyed", "child_up", "child_down", "child_rekeyed", "child_failed", "auth_failed", "peer_capabilities",
	"migrated", "migrate_failed", "probe", "peer_addresses", "clone_failed"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && k > 0 {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Reason says why an SA went down or could not be made.
type Reason uint8

const (
	ReasonNone             Reason = iota
	ReasonLocalDelete             // an API command
	ReasonPeerDelete              // the peer sent DELETE
	ReasonDPDTimeout              // the peer stopped answering (RFC 7296 §2.4)
	ReasonTimeout                 // the setup got no answer
	ReasonAuthFailed              // AUTHENTICATION_FAILED either way (§2.21.2)
	ReasonNoProposalChosen        // no common proposal
	ReasonInvalidKE               // no common D-H group
	ReasonTSUnacceptable          // no common traffic selectors
	ReasonCPFailed                // no virtual IP
	ReasonPeerError               // another error notify from the peer
	ReasonProtocolError           // the peer broke the protocol
	ReasonExpired                 // hard lifetime reached
	ReasonRekeyed                 // replaced by a rekeyed SA
	ReasonReauthenticated         // replaced by a re-authenticated IKE SA
	ReasonInternal                // a local failure (SPI allocation, crypto)
	ReasonRedundant               // lost a rekey collision (§2.8.1, §2.8.2)
	ReasonTemporaryFailure        // the peer said TEMPORARY_FAILURE

	// MOBIKE and cloning (RFC 4555, RFC 7791).
	ReasonAddressChange      // CmdMigrate: our addresses changed (§3.5)
	ReasonPathFailed         // the path stopped working, another answered (§3.11)
	ReasonPeerUpdate         // the peer sent UPDATE_SA_ADDRESSES (§3.5)
	ReasonUnsupported        // MOBIKE or cloning is off here or at the peer
	ReasonNotMOBIKEInitiator // only the MOBIKE initiator moves SAs (§1.3)
)

var reasonNames = [...]string{"none", "local_delete", "peer_delete", "dpd_timeout", "timeout", "auth_failed",
	"no_proposal_chosen", "invalid_ke", "ts_unacceptable", "cp_failed", "peer_error", "protocol_error",
	"expired", "rekeyed", "reauthenticated", "internal", "redundant", "temporary_failure",
	"address_change", "path_failed", "peer_update", "unsupported", "not_mobike_initiator"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Capabilities are what the peer announced.
type Capabilities struct {
	Fragmentation   bool // IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383)
	MOBIKE          bool // MOBIKE_SUPPORTED (RFC 4555)
	Clone           bool // CLONE_IKE_SA_SUPPORTED (RFC 7791)
	NoTFC           bool // ESP_TFC_PADDING_NOT_SUPPORTED (RFC 7296 §1.3.1)
	Childless       bool // CHILDLESS_IKEV2_SUPPORTED (RFC 6023)
	SignatureHashes []ike.HashAlgorithm
}

// Event reports a change for the API and the glue.
type Event struct {
	Kind   EventKind
	Reason Reason
	// Notify is the error notify behind Reason, if any.
	Notify ike.NotifyType
	Detail string
	// Child names the Child SA of child events.
	Child ChildInfo
	// OldChild is the replaced Child SA of EventChildRekeyed.
	OldChild ChildInfo
	// SPIs of the IKE SA; OldSPIs of the replaced one (EventIKERekeyed).
	SPIi, SPIr       uint64
	OldSPIi, OldSPIr uint64
	Caps             Capabilities
	// InitialContact: the peer sent INITIAL_CONTACT (RFC 7296 §2.4), so the
	// glue deletes older IKE SAs between the same identities (EventIKEUp).
	InitialContact bool
	PeerID         Identity
	// Replaces is the local SPI of the IKE SA this re-authenticated one
	// replaces (EventIKEUp): the glue then terminates that one.
	Replaces uint64
	// VirtualIPs assigned to us (initiator) or to the peer (responder).
	VirtualIPs []netip.Addr

	// Local and Remote are the address pair of EventMigrated (the new one),
	// EventMigrateFailed and EventProbe, and the pair EventPeerAddresses
	// arrived on (our view); OldLocal and OldRemote the pair EventMigrated
	// left.
	Local, Remote       netip.AddrPort
	OldLocal, OldRemote netip.AddrPort
	// OK: the path answered (EventProbe); RTT is its round-trip time.
	OK  bool
	RTT time.Duration
	// PeerAddrs are the peer's additional addresses (EventPeerAddresses).
	PeerAddrs []netip.Addr
	// ClonedFrom is the local SPI of the IKE SA this one is a clone of
	// (EventIKEUp of an RFC 7791 clone).
	ClonedFrom uint64
}

// Output is what one call produced. Apply DataplaneOps in order before
// sending Datagrams.
type Output struct {
	Datagrams    []Datagram
	DataplaneOps []DataplaneOp
	Events       []Event
	// Deadline is when to call Handle(Tick); zero = none.
	Deadline time.Time
	// Bind lists local IKE SPIs now to be routed to this machine; Unbind
	// those no longer. The local SPI is SPIi for the original initiator of
	// an IKE SA and SPIr for its responder (it changes with IKE rekeys).
	Bind, Unbind []uint64
	// Spawn is a new IKE SA (re-authentication, make-before-break) with its
	// first Output; the glue drives it like any other machine.
	Spawn *Spawned
	// Done: the machine is finished and may be dropped with all its SPIs.
	Done bool
}

// Spawned is an IKE SA created by another one.
type Spawned struct {
	IKE    *IKE
	Output Output
}
