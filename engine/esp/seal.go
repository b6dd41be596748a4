package esp

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
)

// SealInPlace encrypts the inner packet buf[head:head+n] (head from
// Overhead) as ESP packet number seq, which must come from NextSeq and be
// used once. It writes the ESP header into buf[:head] and TFC padding,
// padding, trailer and ICV after the payload, and returns buf[:total]. The
// capacity of buf must hold head+n+tail.
//
// AEAD suites use the sequence number as the 8-byte IV (RFC 4106 §3.1,
// RFC 7634 §2); CBC suites a random IV (RFC 3602 §2.1).
func (s *SA) SealInPlace(buf []byte, n int, nextHeader uint8, seq uint64) ([]byte, error) {
	out, err := s.seal(buf, n, nextHeader, seq, nil)
	if err != nil {
		return nil, s.drop(err)
	}
	return out, nil
}

// seal does SealInPlace; a non-nil iv replaces the IV (known-answer tests).
func (s *SA) seal(buf []byte, n int, nh uint8, seq uint64, iv []byte) ([]byte, *DropError) {
	ks := s.ks.Load()
	if ks == nil {
		return nil, errZeroed
	}
	if s.hard.Load() {
		return nil, errHardExpired
	}
	switch {
	case seq == 0:
		return nil, errSeqZero
	case seq > s.seqMax:
		return nil, errSeqExhausted
	case seq > s.seq.Load():
		return nil, errSeqNotIssued
	}
	head := 8 + s.p.ivLen
	if n < 0 || n > cap(buf)-head {
		return nil, errBadLen
	}
	payload := n
	if s.tfc && nh != NextHeaderDummy {
		// TFC padding between the inner packet and the ESP padding
		// (RFC 4303 §2.7); skipped when the buffer has no room for it.
		if t := (n + TFCGranule - 1) / TFCGranule * TFCGranule; head+s.ptLen(t)+s.p.icvLen <= cap(buf) {
			payload = t
		}
	}
	pt := s.ptLen(payload)
	total := head + pt + s.p.icvLen
	if total > cap(buf) {
		return nil, errNoRoom
	}
	buf = buf[:total]
	clear(buf[head+n : head+payload])
	// Padding 1, 2, 3, ... then Pad Length and Next Header (RFC 4303 §2.4).
	pad := pt - payload - 2
	tr := buf[head+payload : head+pt]
	for i := range pad {
		tr[i] = byte(i + 1)
	}
	tr[pad] = byte(pad)
	tr[pad+1] = nh

	binary.BigEndian.PutUint32(buf[0:4], s.spi)
	binary.BigEndian.PutUint32(buf[4:8], uint32(seq)) // low half only with ESN (§2.2.1)
	ivb := buf[8:head]
	switch {
	case iv != nil:
		copy(ivb, iv)
	case s.p.aead:
		binary.BigEndian.PutUint64(ivb, seq)
	default:
		rand.Read(ivb) // never fails since Go 1.24: it aborts the program instead
	}

	sc := ks.pool.Get().(*scratch)
	defer ks.pool.Put(sc)
	if s.p.aead {
		ks.aead.Seal(buf[head:head], s.nonce(ks, sc, ivb), buf[head:head+pt], s.aad(sc, buf, seq))
	} else {
		sc.enc.SetIV(ivb)
		sc.enc.CryptBlocks(buf[head:head+pt], buf[head:head+pt])
		copy(buf[head+pt:], s.mac(ks, sc, buf[:head+pt], seq))
		sc.h.Reset()
	}
	s.account(n)
	return buf, nil
}

// ptLen is the length of the encrypted part for a payload of n bytes: the
// payload, padding to the suite's alignment, Pad Length and Next Header.
func (s *SA) ptLen(n int) int {
	a := s.p.align
	return (n + 2 + a - 1) / a * a
}

// nonce is salt ‖ IV (RFC 4106 §4, RFC 7634 §2).
func (s *SA) nonce(ks *keyed, sc *scratch, iv []byte) []byte {
	copy(sc.nonce[:saltLen], ks.salt[:])
	copy(sc.nonce[saltLen:], iv)
	return sc.nonce[:]
}

// aad is SPI ‖ Seq or, with ESN, SPI ‖ Seq high ‖ Seq low (RFC 4106 §5,
// RFC 7634 §2.1).
func (s *SA) aad(sc *scratch, pkt []byte, seq uint64) []byte {
	if !s.esn {
		return pkt[:8]
	}
	binary.BigEndian.PutUint32(sc.aad[0:4], s.spi)
	binary.BigEndian.PutUint64(sc.aad[4:12], seq)
	return sc.aad[:12]
}

// mac returns the truncated HMAC over the ESP header, IV and ciphertext and,
// with ESN, the high half of the sequence number appended for the ICV only
// (RFC 4303 §2.2.1, §3.3.2.1). The result lives in sc.
func (s *SA) mac(ks *keyed, sc *scratch, data []byte, seq uint64) []byte {
	h := sc.h
	h.UnmarshalBinary(ks.innerState) // cannot fail: state saved from the same hash
	h.Write(data)
	if s.esn {
		binary.BigEndian.PutUint32(sc.hi[:], uint32(seq>>32))
		h.Write(sc.hi[:])
	}
	sum := h.Sum(sc.sum[:0])
	h.UnmarshalBinary(ks.outerState)
	h.Write(sum)
	return h.Sum(sc.sum[:0])[:s.p.icvLen]
}

// macEqual compares an ICV in constant time.
func macEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
