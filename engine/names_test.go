package engine

import (
	"fmt"
	"testing"
)

func TestSPINames(t *testing.T) {
	for _, v := range []uint64{0, 1, 0xabcdef, 0x0123456789abcdef, ^uint64(0)} {
		if got, want := spiName(v), fmt.Sprintf("%016x", v); got != want {
			t.Errorf("spiName(%#x) = %q, want %q", v, got, want)
		}
		if got, want := childName(uint32(v)), fmt.Sprintf("%08x", uint32(v)); got != want {
			t.Errorf("childName(%#x) = %q, want %q", uint32(v), got, want)
		}
	}
}
