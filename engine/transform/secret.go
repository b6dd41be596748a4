package transform

import (
	"fmt"
	"runtime"
)

const redacted = "[redacted]"

// Secret holds key material. It prints "[redacted]" with every fmt verb.
// Reached by reflection (as an unexported field, where fmt cannot call
// methods) it still shows only addresses: the bytes sit two pointers deep,
// and fmt dereferences at most one (for a bad verb such as %s on a pointer). Copies of a Secret share the
// bytes: Zero on any copy clears them all. The zero Secret is empty.
type Secret struct {
	p *secretBytes
}

type secretBytes struct {
	b *[]byte
}

// NewSecret copies b into a new Secret. The caller still owns b and should
// clear it when it is no longer needed.
func NewSecret(b []byte) Secret {
	return adoptSecret(append(make([]byte, 0, len(b)), b...))
}

// adoptSecret takes ownership of b without copying it.
func adoptSecret(b []byte) Secret {
	p := &secretBytes{b: &b}
	// Clear the bytes when the Secret is dropped without Zero. The cleanup
	// references the slice, never p, so p stays collectable.
	runtime.AddCleanup(p, func(b []byte) { clear(b) }, b)
	return Secret{p: p}
}

// Bytes returns the key bytes, not a copy: do not retain or modify them.
func (s Secret) Bytes() []byte {
	if s.p == nil {
		return nil
	}
	return *s.p.b
}

// Len is the number of key bytes.
func (s Secret) Len() int { return len(s.Bytes()) }

// Zero overwrites the key bytes and empties every copy of s.
func (s Secret) Zero() {
	if s.p == nil {
		return
	}
	clear(*s.p.b)
	*s.p.b = nil
}

// String implements fmt.Stringer without revealing the key.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer without revealing the key.
func (Secret) GoString() string { return redacted }

// Format implements fmt.Formatter: every verb prints "[redacted]".
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// split cuts s into parts of the given lengths, each a new Secret; the
// lengths must add up to s.Len().
func (s Secret) split(lens ...int) []Secret {
	b := s.Bytes()
	out := make([]Secret, len(lens))
	off := 0
	for i, n := range lens {
		out[i] = NewSecret(b[off : off+n])
		off += n
	}
	return out
}
