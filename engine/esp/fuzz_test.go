package esp

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// fuzzSA builds the inbound SA that data[0] selects: suite, mode, ESN and
// replay window. All use testKeys and SPI 0x1000, so packets sealed by pair
// are authentic.
func fuzzSA(t testing.TB, sel byte) (out, in *SA) {
	suite := allSuites[int(sel)%len(allSuites)]
	mode := dataplane.Tunnel
	if sel&0x08 != 0 {
		mode = dataplane.Transport
	}
	window := []int{64, 0, 4096, 32}[sel>>5&3]
	return pair(t, suite, func(c *Config) {
		c.Mode, c.ESN, c.ReplayWindow, c.TFCPadding = mode, sel&0x10 != 0, window, true
	})
}

// fuzzSeeds returns authentic packets for some selectors, as fuzz inputs.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, sel := range []byte{0x00, 0x01, 0x02, 0x03, 0x05, 0x18, 0x1c, 0x24, 0x46, 0x67} {
		out, _ := fuzzSA(t, sel)
		inner, nh := ipv4(40+int(sel)), NextHeaderIPv4
		if sel&0x08 != 0 {
			nh = 6
		}
		seeds = append(seeds, append([]byte{sel}, seal(t, out, inner, nh)...))
		seeds = append(seeds, append([]byte{sel}, seal(t, out, make([]byte, 3), NextHeaderDummy)...))
	}
	return seeds
}

// FuzzOpen feeds arbitrary bytes to Open and to Classify. Neither may
// panic; a refused packet returns a *DropError counted once; a delivered
// one lies inside the packet. Any payload must also survive Seal then Open.
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{0, 0xff})
	f.Add([]byte{0, 0, 0, 0, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		Classify(data[1:])
		out, in := fuzzSA(t, data[0])
		pkt := data[1:]
		inner, _, err := in.Open(pkt)
		st := in.Stats()
		if err != nil {
			var de *DropError
			if !errors.As(err, &de) || st.Drops[de.Reason] != 1 || st.Drops.Total() != 1 {
				t.Fatalf("err %v, drops %v", err, st.Drops.Map())
			}
		} else {
			start := uintptr(unsafe.Pointer(unsafe.SliceData(pkt)))
			at := uintptr(unsafe.Pointer(unsafe.SliceData(inner)))
			if len(inner) > 0 && (at < start || at+uintptr(len(inner)) > start+uintptr(len(pkt))) {
				t.Fatal("inner packet outside the packet")
			}
			if st.Packets != 1 || st.Drops.Total() != 0 {
				t.Fatalf("stats %+v", st)
			}
		}
		// The same bytes as a transport-mode payload make a round trip.
		tout, tin := pair(t, out.suite, func(c *Config) { c.Mode, c.ESN = dataplane.Transport, in.esn })
		sealed := seal(t, tout, pkt, 253)
		got, nh, err := tin.Open(sealed)
		if err != nil || nh != 253 || string(got) != string(data[1:]) {
			t.Fatalf("round trip: %v nh %d", err, nh)
		}
	})
}

// The seeds reach past the ICV: each opens, or is an authentic dummy.
func TestFuzzSeedsAuthentic(t *testing.T) {
	for i, s := range fuzzSeeds(t) {
		_, in := fuzzSA(t, s[0])
		_, _, err := in.Open(s[1:])
		if dummy := i%2 == 1; (dummy && !errors.Is(err, ErrDummy)) || (!dummy && err != nil) {
			t.Errorf("seed %d (sel %#x): %v", i, s[0], err)
		}
	}
}
