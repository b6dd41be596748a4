// Package few holds short lists with the first element inline: most IKE
// SAs bind one IKE SPI, install one inbound ESP SA and carry one Child
// SA, and a List keeps such a list in 16 bytes where a slice took a
// 24-byte header and an allocation. With several, rest holds them all.
package few

import "slices"

// List is a short list of non-zero values (the zero value marks an empty
// inline slot: SPIs are never 0, RFC 7296 §3.1 and RFC 4303 §2.1; pointers
// never nil). The zero List is empty.
type List[T comparable] struct {
	one  [1]T
	rest *[]T
}

// Items lists them, first added first. The list is the List's storage:
// read it, or change it and give it back with Set; do not keep it across
// Add, Remove and Set.
func (f *List[T]) Items() []T {
	var zero T
	switch {
	case f.rest != nil:
		return *f.rest
	case f.one[0] != zero:
		return f.one[:]
	}
	return nil
}

// Add appends v.
func (f *List[T]) Add(v T) { f.Set(append(f.Items(), v)) }

// Remove takes every v out.
func (f *List[T]) Remove(v T) {
	f.Set(slices.DeleteFunc(f.Items(), func(x T) bool { return x == v }))
}

// Set replaces the list with l (which may be Items, changed).
func (f *List[T]) Set(l []T) {
	var zero T
	switch {
	case len(l) == 0:
		f.one[0], f.rest = zero, nil
	case len(l) == 1:
		f.one[0], f.rest = l[0], nil
	case f.rest == nil:
		f.one[0] = l[0]
		nl := l // only this path allocates
		f.rest = &nl
	default:
		f.one[0], *f.rest = l[0], l
	}
}

// Spilled reports whether the values live behind the inline slot.
func (f *List[T]) Spilled() bool { return f.rest != nil }
