package esp

import "testing"

// Seal and Open allocate nothing per packet, in every suite (AES-GCM
// first of all), with and without ESN.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not measurable under -race: sync.Pool drops items at random")
	}
	for _, suite := range allSuites {
		for _, esn := range []bool{false, true} {
			out, in := pair(t, suite, func(c *Config) { c.ESN = esn; c.TFCPadding = true })
			head, tail := out.Overhead()
			inner := ipv4(1400)
			buf := make([]byte, head+len(inner), head+len(inner)+tail)
			work := make([]byte, 0, cap(buf))
			var err error
			var pkt []byte
			sealAllocs := testing.AllocsPerRun(100, func() {
				copy(buf[head:], inner)
				seq, _ := out.NextSeq()
				if pkt, err = out.SealInPlace(buf, len(inner), NextHeaderIPv4, seq); err != nil {
					t.Fatal(err)
				}
			})
			openAllocs := testing.AllocsPerRun(100, func() {
				copy(buf[head:], inner)
				pkt, _ = out.SealInPlace(buf, len(inner), NextHeaderIPv4, out.seq.Load())
				work = append(work[:0], pkt...)
				in.replay.top = 0 // reopen the same number
				clear(in.replay.ring)
				if _, _, err = in.Open(work); err != nil {
					t.Fatal(err)
				}
			})
			if sealAllocs != 0 || openAllocs != 0 {
				t.Errorf("%s esn=%t: %v allocs per Seal, %v per Open", suite, esn, sealAllocs, openAllocs)
			}
		}
	}
}
