package esp

import "sync/atomic"

// DropReason says why a packet was not sealed or not delivered. Every drop
// that this package decides is counted per SA under its reason.
type DropReason uint8

const (
	DropReplay           DropReason = iota + 1 // duplicate or left of the window (RFC 4303 §3.4.3)
	DropICV                                    // integrity check failed (RFC 4303 §3.4.4)
	DropBadPadding                             // pad length or pad bytes invalid (RFC 4303 §2.4)
	DropShort                                  // shorter than header, IV, trailer and ICV
	DropUnknownSPI                             // no SA for the SPI (counted by the caller)
	DropSelectorMismatch                       // inner packet outside the SA's selectors (counted by the caller, RFC 4301 §5.2)
	DropDummy                                  // dummy packet, next header 59 (RFC 4303 §2.6)
	DropHardExpired                            // hard lifetime reached
	DropSeqExhausted                           // sequence number would cycle (RFC 4303 §3.3.3)
	DropBadSeq                                 // sequence number 0, or not issued by NextSeq
	DropBadLength                              // ciphertext not a whole number of cipher blocks
	DropBadInner                               // tunnel mode: inner packet not IPv4/IPv6 or its length disagrees
	DropSPIMismatch                            // packet SPI is not this SA's SPI
	DropNoRoom                                 // Seal: buffer too small for header, trailer and ICV
	DropZeroed                                 // the SA was zeroed
	numDropReasons
)

// NumDropReasons bounds the DropReason values: every reason r has 0 < r < NumDropReasons.
const NumDropReasons = int(numDropReasons)

var dropNames = [numDropReasons]string{
	DropReplay:           "replay",
	DropICV:              "icv",
	DropBadPadding:       "bad_padding",
	DropShort:            "short",
	DropUnknownSPI:       "unknown_spi",
	DropSelectorMismatch: "selector_mismatch",
	DropDummy:            "dummy",
	DropHardExpired:      "hard_expired",
	DropSeqExhausted:     "seq_exhausted",
	DropBadSeq:           "bad_seq",
	DropBadLength:        "bad_length",
	DropBadInner:         "bad_inner",
	DropSPIMismatch:      "spi_mismatch",
	DropNoRoom:           "no_room",
	DropZeroed:           "zeroed",
}

// String gives the snake_case name used as a counter label.
func (r DropReason) String() string {
	if r > 0 && r < numDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// DropError is the error returned for every dropped packet. The values are
// preallocated, so a drop costs no allocation either.
type DropError struct {
	Reason DropReason
	Detail string
}

func (e *DropError) Error() string {
	if e.Detail == "" {
		return "esp: drop (" + e.Reason.String() + ")"
	}
	return "esp: drop (" + e.Reason.String() + "): " + e.Detail
}

// Is makes errors.Is(err, &DropError{Reason: r}) match on the reason alone.
func (e *DropError) Is(target error) bool {
	t, ok := target.(*DropError)
	return ok && t.Reason == e.Reason && (t.Detail == "" || t.Detail == e.Detail)
}

// Sentinels for errors.Is; each matches every DropError of its reason.
var (
	ErrReplay       = &DropError{Reason: DropReplay}
	ErrICV          = &DropError{Reason: DropICV}
	ErrBadPadding   = &DropError{Reason: DropBadPadding}
	ErrShort        = &DropError{Reason: DropShort}
	ErrDummy        = &DropError{Reason: DropDummy}
	ErrHardExpired  = &DropError{Reason: DropHardExpired}
	ErrSeqExhausted = &DropError{Reason: DropSeqExhausted}
)

// The errors this package returns, one value per cause.
var (
	errReplayOld    = &DropError{Reason: DropReplay, Detail: "left of the window"}
	errReplayDup    = &DropError{Reason: DropReplay, Detail: "duplicate"}
	errReplayESN    = &DropError{Reason: DropReplay, Detail: "ESN inference points before the first subspace"}
	errICV          = &DropError{Reason: DropICV, Detail: "integrity check failed"}
	errPadLen       = &DropError{Reason: DropBadPadding, Detail: "pad length exceeds payload"}
	errPadBytes     = &DropError{Reason: DropBadPadding, Detail: "pad bytes are not 1, 2, 3, ..."}
	errShort        = &DropError{Reason: DropShort, Detail: "shorter than header, IV, trailer and ICV"}
	errDummy        = &DropError{Reason: DropDummy, Detail: "next header 59"}
	errHardExpired  = &DropError{Reason: DropHardExpired, Detail: "hard lifetime reached"}
	errSeqExhausted = &DropError{Reason: DropSeqExhausted, Detail: "sequence number would cycle"}
	errSeqZero      = &DropError{Reason: DropBadSeq, Detail: "sequence number 0"}
	errSeqNotIssued = &DropError{Reason: DropBadSeq, Detail: "sequence number not issued by NextSeq"}
	errBlockLen     = &DropError{Reason: DropBadLength, Detail: "ciphertext is not a whole number of blocks"}
	errInnerProto   = &DropError{Reason: DropBadInner, Detail: "tunnel mode: next header is neither IPv4 nor IPv6"}
	errInnerLen     = &DropError{Reason: DropBadInner, Detail: "tunnel mode: inner IP length disagrees with payload"}
	errSPIMismatch  = &DropError{Reason: DropSPIMismatch, Detail: "packet SPI differs from the SA's"}
	errNoRoom       = &DropError{Reason: DropNoRoom, Detail: "buffer capacity below header, payload, trailer and ICV"}
	errBadLen       = &DropError{Reason: DropNoRoom, Detail: "payload length out of range"}
	errZeroed       = &DropError{Reason: DropZeroed, Detail: "SA zeroed"}
)

// Drops counts drops by reason; safe for concurrent use. The zero value is
// ready. A data plane can keep one for drops that have no SA (unknown_spi).
type Drops struct {
	n [numDropReasons]atomic.Uint64
}

// Inc counts one drop for r; out-of-range reasons are ignored.
func (d *Drops) Inc(r DropReason) {
	if r > 0 && r < numDropReasons {
		d.n[r].Add(1)
	}
}

// Load returns the count for r.
func (d *Drops) Load(r DropReason) uint64 {
	if r > 0 && r < numDropReasons {
		return d.n[r].Load()
	}
	return 0
}

// Snapshot copies the counters.
func (d *Drops) Snapshot() DropCounts {
	var c DropCounts
	for r := DropReason(1); r < numDropReasons; r++ {
		c[r] = d.n[r].Load()
	}
	return c
}

// DropCounts is a snapshot of Drops, indexed by DropReason.
type DropCounts [numDropReasons]uint64

// Total is the sum over all reasons.
func (c DropCounts) Total() uint64 {
	var t uint64
	for _, v := range c {
		t += v
	}
	return t
}

// Map returns the non-zero counts keyed by reason name, the shape of
// dataplane.Counters.Drops.
func (c DropCounts) Map() map[string]uint64 {
	m := make(map[string]uint64)
	for r := DropReason(1); r < numDropReasons; r++ {
		if c[r] != 0 {
			m[r.String()] = c[r]
		}
	}
	return m
}
