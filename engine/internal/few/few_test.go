package few

import (
	"slices"
	"testing"
	"unsafe"
)

// A List keeps its values in order through adds and removes, the only one
// inline (no list behind it), and empties completely.
func TestList(t *testing.T) {
	var f List[uint32]
	for _, step := range []struct {
		add, remove uint32
		want        []uint32
	}{
		{add: 1, want: []uint32{1}},
		{add: 2, want: []uint32{1, 2}},
		{add: 3, want: []uint32{1, 2, 3}},
		{remove: 1, want: []uint32{2, 3}},
		{remove: 3, want: []uint32{2}},
		{add: 4, want: []uint32{2, 4}},
		{remove: 2, want: []uint32{4}},
		{remove: 5, want: []uint32{4}},
		{remove: 4, want: nil},
	} {
		if step.add != 0 {
			f.Add(step.add)
		} else {
			f.Remove(step.remove)
		}
		if got := f.Items(); !slices.Equal(got, step.want) {
			t.Fatalf("after %+v: %v, want %v", step, got, step.want)
		}
		if f.Spilled() != (len(step.want) > 1) {
			t.Fatalf("after %+v: list behind it %v with %d", step, f.Spilled(), len(step.want))
		}
	}
	if n := unsafe.Sizeof(List[uint64]{}); n != 16 {
		t.Fatalf("List[uint64] is %d bytes, want 16", n)
	}
}

// Pointers: nil is the empty slot.
func TestListPointers(t *testing.T) {
	a, b := new(int), new(int)
	var f List[*int]
	f.Add(a)
	f.Add(b)
	l := f.Items()
	l[0], l[1] = l[1], l[0]
	f.Set(l)
	if got := f.Items(); len(got) != 2 || got[0] != b || got[1] != a {
		t.Fatalf("%v", got)
	}
	f.Set(nil)
	if f.Items() != nil || f.Spilled() {
		t.Fatal("not empty")
	}
}
