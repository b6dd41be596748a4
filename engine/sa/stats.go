package sa

import "fmt"

// DropReason says why an inbound datagram was not processed.
type DropReason uint8

const (
	DropMalformed       DropReason = iota // not a decodable IKE message (RFC 7296 §2.5, §3)
	DropWrongSPI                          // SPIs of no IKE SA of this machine
	DropWrongState                        // exchange not allowed in the current state
	DropUnexpected                        // a response with no request outstanding, or the wrong flags
	DropBadMessageID                      // outside the window (RFC 7296 §2.3)
	DropIntegrity                         // ICV or AEAD tag check failed (§3.14)
	DropFragment                          // a fragment the reassembler refused (RFC 7383 §2.6)
	DropNotEncrypted                      // a post-IKE_SA_INIT message without SK/SKF
	DropInvalidPayloads                   // mandatory payloads missing or malformed
	DropClosed                            // the machine is finished
	numDropReasons
)

var dropNames = [...]string{"malformed", "wrong_spi", "wrong_state", "unexpected", "bad_message_id",
	"integrity", "fragment", "not_encrypted", "invalid_payloads", "closed"}

func (r DropReason) String() string {
	if int(r) < len(dropNames) {
		return dropNames[r]
	}
	return fmt.Sprintf("drop(%d)", uint8(r))
}

// Stats are counters of one machine. They are bounded: one counter per reason.
type Stats struct {
	Drops [numDropReasons]uint64
	// Retransmits counts requests we sent again (RFC 7296 §2.1);
	// ResponsesResent counts cached responses sent again for a
	// retransmitted request.
	Retransmits, ResponsesResent uint64
	// Requests and Responses processed (authenticated).
	Requests, Responses uint64
}

// Dropped returns the total of all drop counters.
func (s Stats) Dropped() uint64 {
	var n uint64
	for _, d := range s.Drops {
		n += d
	}
	return n
}

// DropsByReason names the non-zero counters, e.g. for metrics.
func (s Stats) DropsByReason() map[string]uint64 {
	m := map[string]uint64{}
	for i, d := range s.Drops {
		if d != 0 {
			m[DropReason(i).String()] = d
		}
	}
	return m
}

// counters are a machine's Stats as kept: the drop and retransmission
// counters are allocated at the first drop or retransmission, which most
// IKE SAs never see (per-SA memory: 24 bytes instead of 128).
type counters struct {
	x *rareCounters
	// requests and responses count the IKE SA's messages; 32 bits, as
	// Message IDs are (RFC 7296 §2.2: an IKE SA sends at most 2^32).
	requests, responses uint32
}

type rareCounters struct {
	drops               [numDropReasons]uint64
	retransmits, resent uint64
}

func (c *counters) rare() *rareCounters {
	if c.x == nil {
		c.x = new(rareCounters)
	}
	return c.x
}

func (c *counters) drop(r DropReason) { c.rare().drops[r]++ }

// retransmitted counts a request retransmitted, resent a response.
func (c *counters) retransmitted() { c.rare().retransmits++ }
func (c *counters) resent()        { c.rare().resent++ }

func (c *counters) public() Stats {
	st := Stats{Requests: uint64(c.requests), Responses: uint64(c.responses)}
	if x := c.x; x != nil {
		st.Drops, st.Retransmits, st.ResponsesResent = x.drops, x.retransmits, x.resent
	}
	return st
}
