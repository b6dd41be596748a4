package sa

import (
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
)

// fuzzSeeds records a real handshake, a rekey and a DPD exchange: every
// datagram the initiator sent, as seeds.
func fuzzSeeds(t testing.TB) [][]byte {
	ini, resp := pskPair(t)
	ini.FragmentMTU, resp.FragmentMTU = 200, 200
	p := newPump(t, ini, resp, 200)
	p.run(func() bool { return up(p.i)() && up(p.r)() })
	p.settle()
	p.command(p.i, Command{Kind: CmdRekeyChild, SPI: p.i.ike.Info().Children[0].InSPI})
	p.command(p.i, Command{Kind: CmdLiveness})
	p.settle()
	var out [][]byte
	for _, pk := range p.seen {
		if pk.to == p.r {
			out = append(out, pk.dg.Data)
		}
	}
	return out
}

// FuzzResponder feeds arbitrary datagrams to AcceptInit and NewResponder,
// and to a responder in each state: no panic, bounded state and output.
func FuzzResponder(f *testing.F) {
	seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		now := epoch.Add(time.Hour)
		d := Datagram{Local: addrR, Remote: addrI, Data: data}
		// The dispatcher side.
		j := NewCookies(detRand(1))
		j.Threshold = 1
		j.Opened()
		j.AcceptInit(now, d, nil)
		InvalidSPIReply(d)
		_, resp := pskPair(t)
		if m, err := ike.Decode(data); err == nil {
			r, o := NewResponder(resp, now, detRand(2), d, m)
			check(t, r, o)
		}
		// A responder waiting for IKE_AUTH and an established one, given
		// the seeds first so the fuzzed datagram meets real state.
		ini, resp := pskPair(t)
		p := newPump(t, ini, resp, 201)
		p.step()
		p.step() // IKE_SA_INIT reached the responder
		check(t, p.r.ike, p.r.ike.Handle(now, d))
		p.run(func() bool { return up(p.r)() || p.r.done })
		if p.r.ike != nil {
			for range 3 {
				check(t, p.r.ike, p.r.ike.Handle(now, d))
			}
		}
	})
}

func check(t *testing.T, s *IKE, o Output) {
	t.Helper()
	if len(o.Datagrams) > 2*maxFragments || len(o.DataplaneOps) > 64 || len(o.Events) > 16 {
		t.Fatalf("unbounded output: %d datagrams, %d ops, %d events", len(o.Datagrams), len(o.DataplaneOps), len(o.Events))
	}
	if s == nil {
		return
	}
	if len(s.childList()) > maxChildren || len(s.retiring()) > maxRetiring || len(s.later()) > maxDelayed {
		t.Fatalf("unbounded state")
	}
	for _, ss := range s.sessions() {
		if len(ss.queued()) > maxQueue {
			t.Fatalf("unbounded queue")
		}
	}
}
