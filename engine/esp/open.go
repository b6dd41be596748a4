package esp

import (
	"encoding/binary"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// Open authenticates and decrypts the ESP packet pkt (SPI first) in place
// and returns the inner packet, a subslice of pkt, and its Next Header. Every
// refused packet is counted under its reason and the error wraps a
// *DropError. Order (RFC 4303 §3.4): length, SPI, sequence number against
// the replay window, ICV, window update, trailer.
func (s *SA) Open(pkt []byte) (inner []byte, nextHeader uint8, err error) {
	inner, nh, derr := s.open(pkt)
	if derr != nil {
		return nil, 0, s.drop(derr)
	}
	return inner, nh, nil
}

func (s *SA) open(pkt []byte) ([]byte, uint8, *DropError) {
	ks := s.ks.Load()
	if ks == nil {
		return nil, 0, errZeroed
	}
	if s.hard.Load() {
		return nil, 0, errHardExpired
	}
	head, icv := 8+s.p.ivLen, s.p.icvLen
	minCT := 2 // Pad Length and Next Header
	if !s.p.aead {
		minCT = s.p.align
	}
	if len(pkt) < head+minCT+icv {
		return nil, 0, errShort
	}
	if binary.BigEndian.Uint32(pkt[0:4]) != s.spi {
		return nil, 0, errSPIMismatch
	}
	ctLen := len(pkt) - head - icv
	if !s.p.aead && ctLen%s.p.align != 0 {
		return nil, 0, errBlockLen
	}
	seq, derr := s.replay.check(binary.BigEndian.Uint32(pkt[4:8]))
	if derr != nil {
		return nil, 0, derr
	}

	sc := ks.pool.Get().(*scratch)
	var pt []byte
	if s.p.aead {
		var err error
		pt, err = ks.aead.Open(pkt[head:head], s.nonce(ks, sc, pkt[8:head]), pkt[head:], s.aad(sc, pkt, seq))
		if err != nil {
			derr = errICV
		}
	} else {
		ok := macEqual(s.mac(ks, sc, pkt[:head+ctLen], seq), pkt[head+ctLen:])
		sc.h.Reset()
		if ok {
			pt = pkt[head : head+ctLen]
			sc.dec.SetIV(pkt[8:head])
			sc.dec.CryptBlocks(pt, pt)
		} else {
			derr = errICV
		}
	}
	ks.pool.Put(sc)
	if derr != nil {
		return nil, 0, derr
	}
	if derr = s.replay.update(seq); derr != nil {
		return nil, 0, derr
	}

	// Trailer: Padding, Pad Length, Next Header (RFC 4303 §2.4-2.6).
	padLen := int(pt[len(pt)-2])
	nh := pt[len(pt)-1]
	if padLen+2 > len(pt) {
		return nil, 0, errPadLen
	}
	payload := pt[:len(pt)-2-padLen]
	for i, b := range pt[len(payload) : len(pt)-2] {
		if b != byte(i+1) {
			return nil, 0, errPadBytes
		}
	}
	if nh == NextHeaderDummy {
		return nil, 0, errDummy
	}
	if s.mode == dataplane.Tunnel {
		// Strip TFC padding by the inner IP length (RFC 4303 §2.7).
		n, ok := innerLen(nh, payload)
		if !ok {
			if nh != NextHeaderIPv4 && nh != NextHeaderIPv6 {
				return nil, 0, errInnerProto
			}
			return nil, 0, errInnerLen
		}
		payload = payload[:n]
	}
	s.account(len(payload))
	return payload, nh, nil
}

// innerLen is the length of the inner IP packet at the start of p.
func innerLen(nh uint8, p []byte) (int, bool) {
	var n int
	switch nh {
	case NextHeaderIPv4:
		if len(p) < 20 || p[0]>>4 != 4 {
			return 0, false
		}
		n = int(binary.BigEndian.Uint16(p[2:4])) // Total Length (RFC 791)
		if n < 20 {
			return 0, false
		}
	case NextHeaderIPv6:
		if len(p) < 40 || p[0]>>4 != 6 {
			return 0, false
		}
		n = 40 + int(binary.BigEndian.Uint16(p[4:6])) // Payload Length (RFC 8200 §3)
	default:
		return 0, false
	}
	if n > len(p) {
		return 0, false
	}
	return n, true
}
