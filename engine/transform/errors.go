package transform

import (
	"encoding/binary"
	"fmt"

	"github.com/mifsec/mifsec/engine/ike"
)

// Reason classifies an Error. It is stable and meant for programs.
type Reason uint8

// Reasons an operation of this package fails.
const (
	ReasonUnsupported      Reason = iota + 1 // an algorithm or parameter this package does not implement
	ReasonBadKey                             // key material of the wrong length or form
	ReasonShortInput                         // input shorter than its fixed parts
	ReasonIntegrity                          // ICV or AEAD tag mismatch
	ReasonBadPadding                         // pad length or block alignment wrong (RFC 7296 §3.14)
	ReasonIVExhausted                        // the IV counter of an AEAD key ran out
	ReasonBadPublicValue                     // a peer's KE data fails the group's checks
	ReasonNoProposalChosen                   // no acceptable proposal (NO_PROPOSAL_CHOSEN)
	ReasonInvalidKE                          // selected group differs from the KE payload's
	ReasonBadProposal                        // a proposal string or structure is malformed
	ReasonTooLong                            // prf+ asked for more than 255 blocks
	ReasonAuthFailed                         // AUTH payload does not verify
	ReasonBadCertificate                     // certificate parsing or chain validation failed
)

var reasonNames = [...]string{
	ReasonUnsupported:      "unsupported",
	ReasonBadKey:           "bad_key",
	ReasonShortInput:       "short_input",
	ReasonIntegrity:        "integrity_check_failed",
	ReasonBadPadding:       "bad_padding",
	ReasonIVExhausted:      "iv_exhausted",
	ReasonBadPublicValue:   "bad_public_value",
	ReasonNoProposalChosen: "no_proposal_chosen",
	ReasonInvalidKE:        "invalid_ke_payload",
	ReasonBadProposal:      "bad_proposal",
	ReasonTooLong:          "output_too_long",
	ReasonAuthFailed:       "authentication_failed",
	ReasonBadCertificate:   "bad_certificate",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Error is the only error type this package returns. Notify, when not zero,
// is the IKEv2 error notify the IKE layer should send back.
type Error struct {
	Reason Reason
	Notify ike.NotifyType
	// Group is the D-H group to name in INVALID_KE_PAYLOAD (RFC 7296 §1.3).
	Group  ike.GroupID
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return "transform: " + e.Reason.String()
	}
	return "transform: " + e.Reason.String() + ": " + e.Detail
}

// Is matches errors of the same Reason, so errors.Is(err, ErrIntegrity) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason
}

// NotifyData is the data of the notify to send back: the 2-byte group for
// INVALID_KE_PAYLOAD (RFC 7296 §3.10.1), nothing otherwise.
func (e *Error) NotifyData() []byte {
	if e.Reason == ReasonInvalidKE {
		return binary.BigEndian.AppendUint16(nil, uint16(e.Group))
	}
	return nil
}

// Sentinels for errors.Is.
var (
	ErrUnsupported      = &Error{Reason: ReasonUnsupported}
	ErrBadKey           = &Error{Reason: ReasonBadKey}
	ErrShortInput       = &Error{Reason: ReasonShortInput}
	ErrIntegrity        = &Error{Reason: ReasonIntegrity}
	ErrBadPadding       = &Error{Reason: ReasonBadPadding}
	ErrIVExhausted      = &Error{Reason: ReasonIVExhausted}
	ErrBadPublicValue   = &Error{Reason: ReasonBadPublicValue}
	ErrNoProposalChosen = &Error{Reason: ReasonNoProposalChosen}
	ErrInvalidKE        = &Error{Reason: ReasonInvalidKE}
	ErrBadProposal      = &Error{Reason: ReasonBadProposal}
	ErrTooLong          = &Error{Reason: ReasonTooLong}
	ErrAuthFailed       = &Error{Reason: ReasonAuthFailed}
	ErrBadCertificate   = &Error{Reason: ReasonBadCertificate}
)

// Errors returned on the packet path are preallocated so a failed Open
// costs no allocation either.
var (
	errOpenShort   = &Error{Reason: ReasonShortInput, Notify: ike.InvalidSyntax, Detail: "encrypted payload shorter than IV and ICV"}
	errOpenICV     = &Error{Reason: ReasonIntegrity, Detail: "ICV mismatch"}
	errOpenPadding = &Error{Reason: ReasonBadPadding, Notify: ike.InvalidSyntax, Detail: "pad length exceeds decrypted data"}
	errDestroyed   = &Error{Reason: ReasonBadKey, Detail: "cipher used after Destroy"}
	errOpenAlign   = &Error{Reason: ReasonBadPadding, Notify: ike.InvalidSyntax, Detail: "ciphertext not a multiple of the block size"}
)

func errorf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}
