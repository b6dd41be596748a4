package sa

import (
	"net/netip"
	"time"
	"unique"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

// Info is a read-only snapshot of an IKE SA for the API.
type Info struct {
	Name  string
	State State
	// Role is ours in the current IKE SA (it swaps when the peer rekeys,
	// RFC 7296 §1.3.2); OriginalRole is the role we had when it was set up
	// (RFC 4555 §1.3 "initiator").
	Role, OriginalRole  Role
	SPIi, SPIr          uint64
	Local, Remote       netip.AddrPort
	LocalID, RemoteID   Identity
	Algorithms          string // strongSwan style, e.g. "aes256gcm16-prfsha256-x25519"
	NATLocal, NATRemote bool
	Capabilities        Capabilities
	VirtualIPs          []netip.Addr
	DNS, PCSCF          []netip.Addr
	// NextRequestID is the Message ID of our next request, ExpectedID the
	// one we expect from the peer (§2.2).
	NextRequestID, ExpectedID     uint32
	Created, Established, Rekeyed time.Time
	RekeyAt, ExpireAt, ReauthAt   time.Time
	Children                      []ChildInfo
	DownReason                    Reason
	DownDetail                    string
	Stats                         Stats
	// RTT is the round-trip time of the last answered request.
	RTT time.Duration
	// PeerAddrs are the peer's announced additional addresses (RFC 4555
	// §3.6); LocalAddrs ours.
	PeerAddrs, LocalAddrs []netip.Addr
	// MOBIKEInitiator: we decide address changes (RFC 4555 §1.3, the
	// original initiator of the first IKE SA, kept through IKE rekeys).
	MOBIKEInitiator bool
}

// ChildInfo describes one Child SA.
type ChildInfo struct {
	Name              string
	InSPI, OutSPI     uint32
	State             string
	Mode              dataplane.Mode
	Algorithms        string // e.g. "aes128gcm16"
	LocalTS, RemoteTS []ike.TrafficSelector
	Encap             bool
	Created           time.Time
	RekeyAt, ExpireAt time.Time
	PolicyIn          uint64
	PolicyOut         uint64
}

// suiteProposal writes a suite as a one-transform-per-type proposal.
func suiteProposal(s transform.Suite) ike.Proposal {
	p := ike.Proposal{Protocol: s.Protocol}
	p.Transforms = append(p.Transforms, ike.Transform{Type: ike.TransformENCR, ID: uint16(s.Encr), KeyLength: s.KeyBits})
	if s.PRF != 0 {
		p.Transforms = append(p.Transforms, ike.Transform{Type: ike.TransformPRF, ID: uint16(s.PRF)})
	}
	if s.Integ != ike.IntegNone {
		p.Transforms = append(p.Transforms, ike.Transform{Type: ike.TransformINTEG, ID: uint16(s.Integ)})
	}
	if s.Group != ike.GroupNone {
		p.Transforms = append(p.Transforms, ike.Transform{Type: ike.TransformDH, ID: uint16(s.Group)})
	}
	if s.Protocol == ike.ProtoESP {
		esn := ike.ESNNone
		if s.ESN {
			esn = ike.ESNEnabled
		}
		p.Transforms = append(p.Transforms, ike.Transform{Type: ike.TransformESN, ID: uint16(esn)})
	}
	return p
}

// ro returns v capped at its length: a holder of a snapshot that appends
// to it gets a copy instead of writing into the machine's spare capacity.
func ro[T any](v []T) []T { return v[:len(v):len(v)] }

func (s *IKE) childInfo(c *childSA) ChildInfo {
	lts, rts := c.ts()
	ci := ChildInfo{Name: c.cfg.Name, InSPI: c.inSPI, OutSPI: c.outSPI, State: childStateNames[c.state], Mode: c.mode,
		Algorithms: transform.FormatProposal(suiteProposal(c.suite)), LocalTS: ro(lts), RemoteTS: ro(rts), Encap: c.encap,
		Created: s.at(c.created), RekeyAt: s.at(c.rekeyAt), ExpireAt: s.at(c.expireAt)}
	if c.group != nil {
		ci.PolicyIn, ci.PolicyOut = c.group.idIn, c.group.idOut
	}
	return ci
}

// Role is ours in the current IKE SA, as Info gives it (zero before
// there is one), without making the snapshot.
func (s *IKE) Role() Role {
	switch {
	case s.cur == nil:
		return 0
	case s.cur.initiator:
		return Initiator
	}
	return Responder
}

// Info returns a snapshot. Its slices are read-only: they are shared with
// the machine, which replaces them and never writes into them, and with
// other snapshots. Only the Child SA list is allocated, once per input
// (the glue reads Info of every IKE SA on many events); calls between two
// inputs share it.
func (s *IKE) Info() Info {
	i := Info{State: s.state, OriginalRole: s.origRole, Local: s.local, Remote: s.remote,
		LocalID: s.localID(), RemoteID: s.peerID, NATLocal: s.natLocal, NATRemote: s.natRemote, Capabilities: s.caps.public(),
		VirtualIPs: s.vips(), DNS: s.dns(), PCSCF: s.pcscf(),
		Created: s.created, Established: s.at(s.established), Rekeyed: s.at(s.rekeyed),
		RekeyAt: s.at(s.ikeRekeyAt), ExpireAt: s.at(s.ikeLifeAt), ReauthAt: s.at(s.reauthAt),
		DownReason: s.why, DownDetail: s.whyText(), Stats: s.stats.public(),
		RTT: s.rtt(), PeerAddrs: ro(s.peerAddrs()), LocalAddrs: ro(s.localAddrs()), MOBIKEInitiator: s.origRole == Initiator}
	if s.cfg != nil {
		i.Name = s.cfg.Name
	}
	if ss := s.cur; ss != nil {
		i.SPIi, i.SPIr = ss.spii, ss.spir
		i.Role = Responder
		if ss.initiator {
			i.Role = Initiator
		}
		i.NextRequestID, i.ExpectedID = ss.nextReq, ss.expect
		if ss.keys != nil {
			if ss.algs == (unique.Handle[string]{}) {
				ss.algs = unique.Make(transform.FormatProposal(suiteProposal(ss.suite)))
			}
			i.Algorithms = ss.algs.Value()
		}
	}
	if s.kids == nil {
		n := 0
		for _, c := range s.childList() {
			if c.live() {
				n++
			}
		}
		switch n {
		case 0:
			s.kids = noKids
		case 1:
			kl := new(kidList)
			kl.l = kl.one[:0:1]
			s.kids = kl
		default:
			s.kids = &kidList{l: make([]ChildInfo, 0, n)}
		}
		for _, c := range s.childList() {
			if c.live() {
				s.kids.l = append(s.kids.l, s.childInfo(c))
			}
		}
	}
	i.Children = ro(s.kids.l)
	return i
}

// Idle drops what Info cached for the current input (its Child SA list):
// the glue calls it once it has handled the machine's output, so an idle
// IKE SA holds no snapshot; the next Info builds the list again.
func (s *IKE) Idle() { s.kids = nil }

// localAddrs is ourAddrs without the copy: both sources are replaced,
// never written into.
func (s *IKE) localAddrs() []netip.Addr {
	if s.announced() {
		return s.mob.addrs
	}
	if s.cfg == nil {
		return nil
	}
	return s.cfg.AdditionalAddrs
}
