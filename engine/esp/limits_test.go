package esp

import (
	"errors"
	"slices"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// Lifetimes in packets and bytes raise each event once, on both directions;
// past the hard limit the SA refuses packets.
func TestLifetimes(t *testing.T) {
	for _, c := range []struct {
		name   string
		limits dataplane.Limits
		soft   int // packet (1-based) whose processing raises LimitSoft
		hard   int // packet that raises LimitHard; the next one is refused
	}{
		{"packets", dataplane.Limits{SoftPackets: 3, HardPackets: 5}, 3, 5},
		{"bytes", dataplane.Limits{SoftBytes: 250, HardBytes: 500}, 3, 5},
		{"bytes not on a packet boundary", dataplane.Limits{SoftBytes: 201, HardBytes: 401}, 3, 5},
		{"soft and hard together", dataplane.Limits{SoftPackets: 2, HardPackets: 2}, 2, 2},
		{"bytes soft, packets hard", dataplane.Limits{SoftBytes: 100, HardPackets: 4}, 1, 4},
		{"hard only", dataplane.Limits{HardPackets: 3}, 0, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, in := pair(t, dataplane.SuiteAESGCM256, func(cf *Config) { cf.Limits = c.limits })
			for i := 1; i <= c.hard+1; i++ {
				var want LimitEvent
				if i == c.soft {
					want |= LimitSoft
				}
				if i == c.hard {
					want |= LimitHard
				}
				pkt, err := sealErr(out, ipv4(100), NextHeaderIPv4)
				if i > c.hard {
					if !errors.Is(err, ErrHardExpired) {
						t.Fatalf("seal %d after hard limit: %v", i, err)
					}
					break
				}
				if err != nil {
					t.Fatalf("seal %d: %v", i, err)
				}
				if got := out.TakeEvents(); got != want {
					t.Fatalf("outbound packet %d: events %s, want %s", i, got, want)
				}
				if _, _, err := in.Open(pkt); err != nil {
					t.Fatalf("open %d: %v", i, err)
				}
				if got := in.TakeEvents(); got != want {
					t.Fatalf("inbound packet %d: events %s, want %s", i, got, want)
				}
			}
			if got := out.TakeEvents() | in.TakeEvents(); got != 0 {
				t.Fatalf("events raised twice: %s", got)
			}
			pkt := sealAt(t, func() *SA { o, _ := pair(t, dataplane.SuiteAESGCM256, nil); return o }(), uint64(c.hard+1), ipv4(100))
			if _, _, err := in.Open(pkt); !errors.Is(err, ErrHardExpired) {
				t.Fatalf("open after hard limit: %v", err)
			}
		})
	}
}

// Inbound hard expiry comes from inbound traffic alone.
func TestLifetimeInboundHard(t *testing.T) {
	out, _ := pair(t, dataplane.SuiteChaCha20Poly1305, nil)
	_, in := pair(t, dataplane.SuiteChaCha20Poly1305, func(c *Config) { c.Limits.HardPackets = 2 })
	for i := range 3 {
		_, _, err := in.Open(seal(t, out, ipv4(50), NextHeaderIPv4))
		if (i < 2) != (err == nil) {
			t.Fatalf("packet %d: %v", i+1, err)
		}
	}
	if ev := in.TakeEvents(); ev != LimitHard {
		t.Fatalf("events %s", ev)
	}
}

func TestSeqExhaustion(t *testing.T) {
	for _, c := range []struct {
		name     string
		esn      bool
		start    uint64 // counter before the first NextSeq
		ok       int    // NextSeq calls that succeed
		soft     int    // call (1-based) that raises LimitSeq; 0 = none
		exhausts bool   // the calls after ok fail
	}{
		{"32-bit last numbers", false, 1<<32 - 3, 2, 1, true},
		{"32-bit soft threshold", false, (1<<32 - 1) - (1<<32-1)>>3 - 2, 5, 2, false},
		{"32-bit far from the end", false, 1000, 5, 0, false},
		{"esn passes 2^32", true, 1<<32 - 3, 5, 0, false},
		{"esn last numbers", true, 1<<64 - 3, 2, 1, true},
		{"esn soft threshold", true, (1<<64 - 1) - (1<<64-1)>>3 - 1, 3, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, in := pair(t, dataplane.SuiteAESGCM128, func(cf *Config) { cf.ESN = c.esn })
			out.seq.Store(c.start)
			in.replay.top = c.start
			calls := c.ok
			if c.exhausts {
				calls += 2
			}
			for i := 1; i <= calls; i++ {
				seq, err := out.NextSeq()
				if i > c.ok {
					if !errors.Is(err, ErrSeqExhausted) {
						t.Fatalf("call %d: seq %#x err %v, want exhausted", i, seq, err)
					}
					continue
				}
				if err != nil || seq != c.start+uint64(i) {
					t.Fatalf("call %d: seq %#x err %v", i, seq, err)
				}
				if ev := out.TakeEvents(); (ev == LimitSeq) != (i == c.soft) || (ev != 0 && ev != LimitSeq) {
					t.Fatalf("call %d: events %s", i, ev)
				}
				head, tail := out.Overhead()
				buf := make([]byte, head+60, head+60+tail)
				copy(buf[head:], ipv4(60))
				pkt, err := out.SealInPlace(buf, 60, NextHeaderIPv4, seq)
				if err != nil {
					t.Fatalf("seal %#x: %v", seq, err)
				}
				if _, _, err := in.Open(pkt); err != nil {
					t.Fatalf("open %#x: %v", seq, err)
				}
			}
			if ev := out.TakeEvents(); ev != 0 && c.soft == 0 {
				t.Fatalf("unexpected events %s", ev)
			}
			if st := out.Stats(); c.exhausts != (st.Drops[DropSeqExhausted] == 2) {
				t.Fatalf("drops %v", st.Drops.Map())
			}
		})
	}
}

func TestLimitEventString(t *testing.T) {
	for _, c := range []struct {
		ev    LimitEvent
		str   string
		kinds []dataplane.EventKind
	}{
		{0, "none", nil},
		{LimitSoft, "soft_expired", []dataplane.EventKind{dataplane.SoftExpired}},
		{LimitSoft | LimitHard | LimitSeq, "soft_expired|hard_expired|seq_exhausted", []dataplane.EventKind{dataplane.SoftExpired, dataplane.HardExpired, dataplane.SeqExhausted}},
		{LimitSeq | 0x80, "seq_exhausted|unknown", []dataplane.EventKind{dataplane.SeqExhausted}},
	} {
		if got := c.ev.String(); got != c.str {
			t.Errorf("%#x: %q, want %q", uint8(c.ev), got, c.str)
		}
		if got := slices.Collect(c.ev.Kinds()); !slices.Equal(got, c.kinds) {
			t.Errorf("%#x: kinds %v, want %v", uint8(c.ev), got, c.kinds)
		}
	}
	if !(LimitSoft | LimitHard).Has(LimitHard) || LimitSoft.Has(LimitHard) || LimitSoft.Has(0) {
		t.Error("Has")
	}
}
