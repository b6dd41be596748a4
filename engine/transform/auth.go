package transform

import (
	"crypto/hmac"

	"github.com/mifsec/mifsec/engine/ike"
)

// keyPad is the PSK pad of RFC 7296 §2.15: 17 ASCII octets, no NUL.
const keyPad = "Key Pad for IKEv2"

// SignedOctets builds what AUTH covers (RFC 7296 §2.15):
//
//	InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI
//	MACedIDForI = prf(SK_pi, RestOfInitIDPayload)
//
// and the responder's mirror image with RealMessage2, NonceIData and SK_pr.
// realMessage is the IKE_SA_INIT message the signer sent (the last one, non-
// ESP marker removed), peerNonce the other side's nonce data, skp the
// signer's SK_p, and idBody the signer's ID payload body without its generic
// header (ID type, 3 reserved octets, data).
func SignedOctets(p PRF, realMessage, peerNonce []byte, skp Secret, idBody []byte) []byte {
	mac := p.Sum(skp.Bytes(), idBody)
	out := make([]byte, 0, len(realMessage)+len(peerNonce)+len(mac))
	return append(append(append(out, realMessage...), peerNonce...), mac...)
}

// PSKAuth is the AUTH data for method 2, Shared Key Message Integrity Code
// (RFC 7296 §2.15): prf(prf(Shared Secret, "Key Pad for IKEv2"), SignedOctets).
// With EAP, the MSK takes the place of the shared secret (§2.16).
func PSKAuth(p PRF, psk Secret, signedOctets []byte) []byte {
	k := p.Sum(psk.Bytes(), []byte(keyPad))
	defer clear(k)
	return p.Sum(k, signedOctets)
}

// VerifyPSKAuth checks received AUTH data in constant time. A mismatch is
// AUTHENTICATION_FAILED (RFC 7296 §2.21.2).
func VerifyPSKAuth(p PRF, psk Secret, signedOctets, auth []byte) error {
	if !hmac.Equal(PSKAuth(p, psk, signedOctets), auth) {
		return &Error{Reason: ReasonAuthFailed, Notify: ike.AuthenticationFailed, Detail: "shared key AUTH mismatch"}
	}
	return nil
}
