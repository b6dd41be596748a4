package userspace

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// csumAdd adds b to a running Internet checksum accumulator (RFC 1071 §4.1:
// the one's complement sum may be computed over wider words with the carries
// folded back in). All chunks but the last must have an even length.
func csumAdd(sum uint64, b []byte) uint64 {
	var c uint64
	for len(b) >= 32 {
		sum, c = bits.Add64(sum, binary.BigEndian.Uint64(b[0:8]), c)
		sum, c = bits.Add64(sum, binary.BigEndian.Uint64(b[8:16]), c)
		sum, c = bits.Add64(sum, binary.BigEndian.Uint64(b[16:24]), c)
		sum, c = bits.Add64(sum, binary.BigEndian.Uint64(b[24:32]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		sum, c = bits.Add64(sum, binary.BigEndian.Uint64(b[:8]), c)
		b = b[8:]
	}
	sum, c = bits.Add64(sum, c, 0)
	if len(b) >= 4 {
		sum, c = bits.Add64(sum, uint64(binary.BigEndian.Uint32(b[:4])), 0)
		sum += c
		b = b[4:]
	}
	if len(b) >= 2 {
		sum, c = bits.Add64(sum, uint64(binary.BigEndian.Uint16(b[:2])), 0)
		sum += c
		b = b[2:]
	}
	if len(b) == 1 {
		sum, c = bits.Add64(sum, uint64(b[0])<<8, 0)
		sum += c
	}
	return sum
}

// csumFold folds a 64-bit accumulator to 16 bits (not complemented).
func csumFold(sum uint64) uint16 {
	s := sum>>32 + sum&0xffffffff
	s = s>>32 + s&0xffffffff
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s)
}

// checksum returns the Internet checksum of b (RFC 1071).
func checksum(b []byte) uint16 { return ^csumFold(csumAdd(0, b)) }

// pseudoSum is the sum of the TCP/UDP pseudo-header: RFC 793 §3.1 (IPv4),
// RFC 8200 §8.1 (IPv6). src and dst are the raw address bytes.
func pseudoSum(src, dst []byte, proto uint8, length int) uint64 {
	sum := csumAdd(0, src)
	sum = csumAdd(sum, dst)
	return sum + uint64(proto) + uint64(length)
}

// addrFrom returns the address in a 4- or 16-byte slice.
func addrFrom(b []byte) netip.Addr {
	if len(b) == 4 {
		return netip.AddrFrom4([4]byte(b))
	}
	return netip.AddrFrom16([16]byte(b))
}
