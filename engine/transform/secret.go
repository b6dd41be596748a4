package transform

import (
	"fmt"
)

const redacted = "[redacted]"

// Secret holds key material. It prints "[redacted]" with every fmt verb.
// Reached by reflection (as an unexported field, where fmt cannot call
// methods) it still shows only an address: it holds a pointer to a
// pointer, which fmt never dereferences (even for a bad verb such as %s,
// where it prints the pointer at top level, fmt follows only a pointer to
// an array, slice, struct or map). Copies of a Secret share the bytes: Zero
// on any copy clears them all. The zero Secret is empty.
//
// Nothing clears a Secret that is dropped without Zero: every holder of key
// material zeroes it when done (a cleanup per Secret cost an allocation and
// ~8 % of a responder's CPU per handshake).
type Secret struct {
	p **[]byte // &cell.ref
}

// secretCell is the state the copies of one Secret share; ref points at b.
type secretCell struct {
	ref *[]byte
	b   []byte
}

// inlineSecret is the largest Secret whose bytes share the allocation of
// its cell: PRF outputs up to SHA-512, X25519 and P-256/P-384 values.
const inlineSecret = 64

// secretBox is a cell with room for the bytes of a small Secret.
type secretBox struct {
	secretCell
	buf [inlineSecret]byte
}

func (c *secretCell) secret() Secret {
	c.ref = &c.b
	return Secret{p: &c.ref}
}

// newSecret returns a Secret of n zero bytes and those bytes, to be filled
// by the caller: one allocation when n <= inlineSecret, else two.
func newSecret(n int) (Secret, []byte) {
	if n <= inlineSecret {
		box := new(secretBox)
		box.b = box.buf[:n:n]
		return box.secret(), box.b
	}
	c := &secretCell{b: make([]byte, n)}
	return c.secret(), c.b
}

// NewSecret copies b into a new Secret. The caller still owns b and should
// clear it when it is no longer needed.
func NewSecret(b []byte) Secret {
	s, buf := newSecret(len(b))
	copy(buf, b)
	return s
}

// adoptSecret takes ownership of b without copying it (one allocation).
func adoptSecret(b []byte) Secret {
	c := &secretCell{b: b}
	return c.secret()
}

// splitInto takes ownership of b and cuts it into one Secret per element
// of out, of the given lengths, which must add up to len(b), with cells[i]
// the cell of out[i]. The Secrets share b: Zero on one clears only its own
// part.
func splitInto(b []byte, cells []secretCell, out []*Secret, lens []int) {
	off := 0
	for i, n := range lens {
		cells[i].b = b[off : off+n : off+n]
		*out[i] = cells[i].secret()
		off += n
	}
}

// Bytes returns the key bytes, not a copy: do not retain or modify them.
func (s Secret) Bytes() []byte {
	if s.p == nil {
		return nil
	}
	return **s.p
}

// Len is the number of key bytes.
func (s Secret) Len() int { return len(s.Bytes()) }

// Zero overwrites the key bytes and empties every copy of s.
func (s Secret) Zero() {
	if s.p == nil {
		return
	}
	clear(**s.p)
	**s.p = nil
}

// String implements fmt.Stringer without revealing the key.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer without revealing the key.
func (Secret) GoString() string { return redacted }

// Format implements fmt.Formatter: every verb prints "[redacted]".
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }
