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
	var sc [stackScratch]byte
	out := make([]byte, 0, len(realMessage)+len(peerNonce)+p.Size())
	out = append(append(out, realMessage...), peerNonce...)
	return p.hmac(out, scratch(sc[:], p.macScratch(len(idBody))), skp.Bytes(), idBody)
}

// PSKAuth is the AUTH data for method 2, Shared Key Message Integrity Code
// (RFC 7296 §2.15): prf(prf(Shared Secret, "Key Pad for IKEv2"), SignedOctets).
// With EAP, the MSK takes the place of the shared secret (§2.16).
func PSKAuth(p PRF, psk Secret, signedOctets []byte) []byte {
	return p.pskAuth(make([]byte, 0, p.Size()), psk, signedOctets)
}

// pskAuth appends PSKAuth's result to dst.
func (p PRF) pskAuth(dst []byte, psk Secret, signedOctets []byte) []byte {
	var sc [stackScratch]byte
	var kb [maxSize]byte
	w := scratch(sc[:], p.macScratch(max(len(keyPad), len(signedOctets))))
	k := p.hmac(kb[:0], w, psk.Bytes(), []byte(keyPad))
	dst = p.hmac(dst, w, k, signedOctets)
	clear(kb[:])
	return dst
}

// VerifyPSKAuth checks received AUTH data in constant time. A mismatch is
// AUTHENTICATION_FAILED (RFC 7296 §2.21.2).
func VerifyPSKAuth(p PRF, psk Secret, signedOctets, auth []byte) error {
	var want [maxSize]byte
	if !hmac.Equal(p.pskAuth(want[:0], psk, signedOctets), auth) {
		return &Error{Reason: ReasonAuthFailed, Notify: ike.AuthenticationFailed, Detail: "shared key AUTH mismatch"}
	}
	return nil
}
