package esp

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// sealRaw builds an authentic packet whose encrypted part is exactly pt
// (payload and trailer as given, however wrong), so trailer checks can be
// reached past the ICV.
func sealRaw(t testing.TB, s *SA, seq uint64, pt []byte) []byte {
	t.Helper()
	ks := s.ks.Load()
	head := 8 + s.p.ivLen
	pkt := make([]byte, head+len(pt), head+len(pt)+s.p.icvLen)
	binary.BigEndian.PutUint32(pkt[0:4], s.spi)
	binary.BigEndian.PutUint32(pkt[4:8], uint32(seq))
	binary.BigEndian.PutUint64(pkt[8:16], seq)
	copy(pkt[head:], pt)
	sc := ks.pool.Get().(*scratch)
	defer ks.pool.Put(sc)
	if s.p.aead {
		return ks.aead.Seal(pkt[:head], s.nonce(ks, sc, pkt[8:head]), pkt[head:], s.aad(sc, pkt, seq))
	}
	if len(pt)%s.p.align != 0 {
		t.Fatalf("sealRaw: %d bytes not block aligned", len(pt))
	}
	sc.enc.SetIV(pkt[8:head])
	sc.enc.CryptBlocks(pkt[head:], pkt[head:])
	return append(pkt, s.mac(ks, sc, pkt, seq)...)
}

// trailer appends padding 1..pad, pad length and next header to payload.
func trailer(payload []byte, pad int, nh uint8) []byte {
	out := append([]byte(nil), payload...)
	for i := range pad {
		out = append(out, byte(i+1))
	}
	return append(out, byte(pad), nh)
}

// Every packet refused is counted once, under its reason.
func TestEveryDropCounted(t *testing.T) {
	type drop struct {
		name   string
		reason DropReason
		// run provokes one drop on fresh SAs and returns the error; the
		// drop is counted on in unless outbound is set.
		run      func(t *testing.T, out, in *SA) error
		outbound bool
	}
	open := func(in *SA, pkt []byte) error { _, _, err := in.Open(pkt); return err }
	drops := []drop{
		{"replay duplicate", DropReplay, func(t *testing.T, out, in *SA) error {
			p := seal(t, out, ipv4(60), NextHeaderIPv4)
			c := append([]byte(nil), p...)
			if err := open(in, p); err != nil {
				t.Fatal(err)
			}
			return open(in, c)
		}, false},
		{"replay old", DropReplay, func(t *testing.T, out, in *SA) error {
			p := sealAt(t, out, 1, ipv4(60))
			if err := open(in, sealAt(t, out, 200, ipv4(60))); err != nil {
				t.Fatal(err)
			}
			return open(in, p)
		}, false},
		{"icv", DropICV, func(t *testing.T, out, in *SA) error {
			p := seal(t, out, ipv4(60), NextHeaderIPv4)
			p[len(p)-3] ^= 0x80
			return open(in, p)
		}, false},
		{"icv ciphertext", DropICV, func(t *testing.T, out, in *SA) error {
			p := seal(t, out, ipv4(60), NextHeaderIPv4)
			p[30] ^= 1
			return open(in, p)
		}, false},
		{"pad length too big", DropBadPadding, func(t *testing.T, out, in *SA) error {
			pt := append(ipv4(30), 200, NextHeaderIPv4)
			return open(in, sealRaw(t, out, 1, pt))
		}, false},
		{"pad bytes wrong", DropBadPadding, func(t *testing.T, out, in *SA) error {
			pt := trailer(ipv4(28), 2, NextHeaderIPv4)
			pt[28] = 7
			return open(in, sealRaw(t, out, 1, pt))
		}, false},
		{"short", DropShort, func(t *testing.T, out, in *SA) error {
			p := seal(t, out, ipv4(20), NextHeaderIPv4)
			return open(in, p[:8+out.p.ivLen+out.p.icvLen+1])
		}, false},
		{"empty", DropShort, func(t *testing.T, out, in *SA) error { return open(in, nil) }, false},
		{"dummy", DropDummy, func(t *testing.T, out, in *SA) error {
			return open(in, seal(t, out, make([]byte, 33), NextHeaderDummy))
		}, false},
		{"hard expired inbound", DropHardExpired, func(t *testing.T, out, in *SA) error {
			in.hard.Store(true)
			return open(in, seal(t, out, ipv4(60), NextHeaderIPv4))
		}, false},
		{"hard expired outbound", DropHardExpired, func(t *testing.T, out, in *SA) error {
			seal(t, out, ipv4(60), NextHeaderIPv4)
			out.hard.Store(true)
			_, err := sealErr(out, ipv4(60), NextHeaderIPv4)
			return err
		}, true},
		{"seq exhausted", DropSeqExhausted, func(t *testing.T, out, in *SA) error {
			in.seq.Store(1<<32 - 1)
			_, err := in.NextSeq()
			return err
		}, false},
		{"seq zero", DropBadSeq, func(t *testing.T, out, in *SA) error {
			p := seal(t, out, ipv4(60), NextHeaderIPv4)
			clear(p[4:8])
			return open(in, p)
		}, false},
		{"seq not issued", DropBadSeq, func(t *testing.T, out, in *SA) error {
			head, tail := in.Overhead()
			_, err := in.SealInPlace(make([]byte, head+20, head+20+tail), 20, NextHeaderIPv4, 5)
			return err
		}, false},
		{"seq zero outbound", DropBadSeq, func(t *testing.T, out, in *SA) error {
			head, tail := in.Overhead()
			_, err := in.SealInPlace(make([]byte, head+20, head+20+tail), 20, NextHeaderIPv4, 0)
			return err
		}, false},
		{"spi mismatch", DropSPIMismatch, func(t *testing.T, out, in *SA) error {
			p := seal(t, out, ipv4(60), NextHeaderIPv4)
			p[0] ^= 1
			return open(in, p)
		}, false},
		{"inner protocol", DropBadInner, func(t *testing.T, out, in *SA) error {
			return open(in, seal(t, out, ipv4(60), 17))
		}, false},
		{"inner length", DropBadInner, func(t *testing.T, out, in *SA) error {
			p := ipv4(60)
			binary.BigEndian.PutUint16(p[2:4], 61)
			return open(in, seal(t, out, p, NextHeaderIPv4))
		}, false},
		{"inner version", DropBadInner, func(t *testing.T, out, in *SA) error {
			return open(in, seal(t, out, ipv4(60), NextHeaderIPv6))
		}, false},
		{"no room", DropNoRoom, func(t *testing.T, out, in *SA) error {
			head, _ := out.Overhead()
			seq, _ := out.NextSeq()
			_, err := out.SealInPlace(make([]byte, head+60), 60, NextHeaderIPv4, seq)
			return err
		}, true},
		{"negative length", DropNoRoom, func(t *testing.T, out, in *SA) error {
			seq, _ := out.NextSeq()
			_, err := out.SealInPlace(make([]byte, 100), -1, NextHeaderIPv4, seq)
			return err
		}, true},
		{"zeroed", DropZeroed, func(t *testing.T, out, in *SA) error {
			p := seal(t, out, ipv4(60), NextHeaderIPv4)
			in.Zero()
			return open(in, p)
		}, false},
	}
	cbcOnly := []drop{
		{"ciphertext not whole blocks", DropBadLength, func(t *testing.T, out, in *SA) error {
			p := seal(t, out, ipv4(60), NextHeaderIPv4)
			return open(in, append(p, 0))
		}, false},
	}
	seen := map[DropReason]bool{DropUnknownSPI: true, DropSelectorMismatch: true} // caller's, below
	for _, suite := range allSuites {
		list := drops
		if p, _ := suiteParams(suite); !p.aead {
			list = append(append([]drop(nil), drops...), cbcOnly...)
		}
		for _, d := range list {
			t.Run(suite.String()+"/"+d.name, func(t *testing.T) {
				out, in := pair(t, suite, nil)
				err := d.run(t, out, in)
				var de *DropError
				if !errors.As(err, &de) || de.Reason != d.reason {
					t.Fatalf("err = %v, want reason %s", err, d.reason)
				}
				if !errors.Is(err, &DropError{Reason: d.reason}) {
					t.Fatalf("errors.Is(%v, reason %s) is false", err, d.reason)
				}
				counted := in
				if d.outbound {
					counted = out
				}
				st := counted.Stats()
				if st.Drops[d.reason] != 1 || st.Drops.Total() != 1 {
					t.Fatalf("drops %v, want exactly one %s", st.Drops.Map(), d.reason)
				}
				if m := st.Drops.Map(); m[d.reason.String()] != 1 || len(m) != 1 {
					t.Fatalf("map %v", m)
				}
				seen[d.reason] = true
			})
		}
	}
	// Reasons the caller decides are counted through CountDrop and Drops.
	_, in := pair(t, dataplane.SuiteAESGCM128, nil)
	in.CountDrop(DropSelectorMismatch)
	var global Drops
	global.Inc(DropUnknownSPI)
	global.Inc(0)
	global.Inc(numDropReasons)
	if in.Stats().Drops[DropSelectorMismatch] != 1 || global.Load(DropUnknownSPI) != 1 || global.Snapshot().Total() != 1 {
		t.Fatal("caller drop counters")
	}
	for r := DropReason(1); r < numDropReasons; r++ {
		if !seen[r] {
			t.Errorf("no test provokes %s", r)
		}
		if r.String() == "unknown" || r.String() == "" {
			t.Errorf("reason %d has no name", r)
		}
	}
	if DropReason(0).String() != "unknown" || numDropReasons.String() != "unknown" {
		t.Error("out-of-range reasons must print unknown")
	}
}

// A dummy packet is authentic: it moves the window and is then dropped.
func TestDummyPacket(t *testing.T) {
	for _, mode := range []dataplane.Mode{dataplane.Tunnel, dataplane.Transport} {
		out, in := pair(t, dataplane.SuiteAESGCM128, func(c *Config) { c.Mode, c.TFCPadding = mode, true })
		p := seal(t, out, make([]byte, 37), NextHeaderDummy)
		c := append([]byte(nil), p...)
		if _, _, err := in.Open(p); !errors.Is(err, ErrDummy) {
			t.Fatalf("%s: dummy: %v", mode, err)
		}
		if _, _, err := in.Open(c); !errors.Is(err, ErrReplay) {
			t.Fatalf("%s: replayed dummy: %v", mode, err)
		}
		st := in.Stats()
		if st.Packets != 0 || st.Drops[DropDummy] != 1 || st.Drops[DropReplay] != 1 {
			t.Fatalf("%s: stats %+v", mode, st)
		}
	}
}
