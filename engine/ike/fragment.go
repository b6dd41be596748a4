package ike

import "errors"

// RFC 7383 IKEv2 message fragmentation of the plaintext inner payload chain.
// Each fragment is sealed separately by engine/transform into an SKF payload
// (EncryptedFragment); received fragments are authenticated and decrypted
// before they reach the Reassembler (RFC 7383 §2.6).

// Fragment is the plaintext of one SKF fragment.
type Fragment struct {
	First  PayloadType // first inner payload type; set in fragment 1 only (RFC 7383 §2.5)
	Number uint16      // 1..Total
	Total  uint16
	Data   []byte
}

// FragmentLayout is what surrounds each fragment's plaintext in a datagram.
type FragmentLayout struct {
	// MaxDatagram is the largest IP datagram to send (RFC 7383 §2.5.1: 1280
	// for IPv6, 576 for IPv4 when nothing better is known).
	MaxDatagram int
	// Overhead is the IP and UDP headers, plus 4 for the non-ESP marker on
	// port 4500 (RFC 3948 §2.2).
	Overhead int
	IVLen    int
	ICVLen   int
	// BlockSize aligns plaintext | Padding | Pad Length (RFC 7296 §3.14);
	// 0 or 1 for no alignment.
	BlockSize int
}

// MaxPlaintext is the largest fragment plaintext that fits: what remains of
// the datagram after the headers, IKE header, SKF header, IV and ICV, rounded
// down to the block size, less the Pad Length octet.
func (l FragmentLayout) MaxPlaintext() (int, error) {
	bs := l.BlockSize
	if bs <= 0 {
		bs = 1
	}
	if l.Overhead < 0 || l.IVLen < 0 || l.ICVLen < 0 {
		return 0, errors.New("ike: fragment layout with negative sizes")
	}
	room := l.MaxDatagram - l.Overhead - HeaderLen - FragmentHeaderLen - l.IVLen - l.ICVLen
	n := room/bs*bs - 1
	if room <= 0 || n < 1 {
		return 0, errors.New("ike: datagram size " + itoa(l.MaxDatagram) + " leaves no room for fragment data")
	}
	return n, nil
}

// SplitFragments cuts the inner payload chain of an encrypted message (first
// is its first payload type, as returned by EncodePayloads) into fragments
// that fit l. Data of the fragments refers to inner.
func SplitFragments(first PayloadType, inner []byte, l FragmentLayout) ([]Fragment, error) {
	max, err := l.MaxPlaintext()
	if err != nil {
		return nil, err
	}
	n := (len(inner) + max - 1) / max
	if n == 0 {
		n = 1
	}
	if n > 0xffff {
		return nil, errors.New("ike: message needs more than 65535 fragments")
	}
	fs := make([]Fragment, n)
	for i := range fs {
		end := min((i+1)*max, len(inner))
		fs[i] = Fragment{Number: uint16(i + 1), Total: uint16(n), Data: inner[i*max : end]}
	}
	fs[0].First = first
	return fs, nil
}

// Reassembly errors; a *FragmentError wraps one of them.
var (
	ErrFragmentInvalid = errors.New("invalid fragment")
	ErrFragmentLimit   = errors.New("fragment limit exceeded")
	ErrFragmentTotal   = errors.New("inconsistent Total Fragments")
)

// FragmentError reports a fragment the Reassembler refused.
type FragmentError struct {
	Err    error // ErrFragmentInvalid, ErrFragmentLimit or ErrFragmentTotal
	Number uint16
	Total  uint16
	Reason string
}

func (e *FragmentError) Error() string {
	return "ike: fragment " + itoa(int(e.Number)) + "/" + itoa(int(e.Total)) + ": " + e.Err.Error() + ": " + e.Reason
}

func (e *FragmentError) Unwrap() error { return e.Err }

// Default reassembly limits.
const (
	DefaultMaxFragments = 128
	DefaultMaxSize      = 64 << 10
)

// Reassembler collects the decrypted fragments of one message (one IKE SA,
// one direction, one Message ID), in any order. It is not safe for
// concurrent use.
type Reassembler struct {
	maxFragments int
	maxSize      int

	total uint16
	first PayloadType
	parts [][]byte // by Number-1; nil = missing
	got   int
	size  int
}

// NewReassembler returns a Reassembler accepting at most maxFragments
// fragments and maxSize octets of reassembled plaintext (0 = defaults).
func NewReassembler(maxFragments, maxSize int) *Reassembler {
	if maxFragments <= 0 {
		maxFragments = DefaultMaxFragments
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	return &Reassembler{maxFragments: maxFragments, maxSize: maxSize}
}

// Reset drops any partial message.
func (r *Reassembler) Reset() {
	r.total, r.first, r.parts, r.got, r.size = 0, PayloadNone, nil, 0, 0
}

// Pending returns how many fragments have arrived of how many.
func (r *Reassembler) Pending() (got, total int) { return r.got, int(r.total) }

// Add takes one fragment. f.Data is copied. When the last missing fragment
// arrives it returns the first inner payload type and the whole inner chain,
// done = true, and the Reassembler is empty again. A duplicate fragment (a
// retransmission) is ignored.
//
// RFC 7383 §2.6: a fragment with a larger Total Fragments than the ones held
// restarts reassembly with it (the sender re-fragmented for a smaller MTU); a
// smaller Total Fragments is refused with ErrFragmentTotal and the fragments
// held are kept. A limit overrun drops the partial message.
func (r *Reassembler) Add(f Fragment) (first PayloadType, inner []byte, done bool, err error) {
	fail := func(kind error, reason string) (PayloadType, []byte, bool, error) {
		return PayloadNone, nil, false, &FragmentError{Err: kind, Number: f.Number, Total: f.Total, Reason: reason}
	}
	if f.Total == 0 || f.Number == 0 || f.Number > f.Total {
		return fail(ErrFragmentInvalid, "Fragment Number outside 1..Total Fragments")
	}
	if int(f.Total) > r.maxFragments {
		r.Reset()
		return fail(ErrFragmentLimit, "more than "+itoa(r.maxFragments)+" fragments")
	}
	switch {
	case r.total == 0 || f.Total > r.total:
		r.start(f.Total)
	case f.Total < r.total:
		return fail(ErrFragmentTotal, "Total Fragments "+itoa(int(f.Total))+" below the "+itoa(int(r.total))+" being reassembled")
	}
	i := int(f.Number) - 1
	if r.parts[i] != nil {
		return PayloadNone, nil, false, nil
	}
	if r.size+len(f.Data) > r.maxSize {
		r.Reset()
		return fail(ErrFragmentLimit, "reassembled message above "+itoa(r.maxSize)+" octets")
	}
	r.parts[i] = append(make([]byte, 0, len(f.Data)), f.Data...)
	r.got++
	r.size += len(f.Data)
	if f.Number == 1 {
		r.first = f.First
	}
	if r.got < int(r.total) {
		return PayloadNone, nil, false, nil
	}
	inner = make([]byte, 0, r.size)
	for _, p := range r.parts {
		inner = append(inner, p...)
	}
	first = r.first
	r.Reset()
	return first, inner, true, nil
}

func (r *Reassembler) start(total uint16) {
	r.Reset()
	r.total = total
	r.parts = make([][]byte, total)
}
