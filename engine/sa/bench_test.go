package sa

import (
	"testing"
	"time"
)

// BenchmarkEstablish measures a full IKE_SA_INIT + IKE_AUTH with a Child
// SA (PSK, x25519, aes256gcm16-prfsha256) in memory, and reports the CPU
// time spent inside each side's machine per handshake.
func BenchmarkEstablish(b *testing.B) {
	ini, resp := pskPair(b)
	ini.IKEProposals = mustProps(b, "aes256gcm16-prfsha256-x25519", 1)
	resp.IKEProposals = ini.IKEProposals
	var tI, tR time.Duration
	b.ReportAllocs()
	for n := 0; b.Loop(); n++ {
		now := epoch
		t0 := time.Now()
		i, out := NewInitiator(ini, now, nil)
		tI += time.Since(t0)
		d := out.Datagrams[0]
		t0 = time.Now()
		r, rout := NewResponder(resp, now, nil, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data}, nil)
		tR += time.Since(t0)
		d = rout.Datagrams[0]
		t0 = time.Now()
		out = i.Handle(now, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data})
		tI += time.Since(t0)
		d = out.Datagrams[0]
		t0 = time.Now()
		rout = r.Handle(now, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data})
		tR += time.Since(t0)
		d = rout.Datagrams[0]
		t0 = time.Now()
		i.Handle(now, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data})
		tI += time.Since(t0)
		if i.State() != StateEstablished || r.State() != StateEstablished {
			b.Fatal("not established")
		}
		// Return the SPIs so the allocators do not grow.
		i.Handle(now, Command{Kind: CmdTerminate})
		r.Handle(now, Command{Kind: CmdTerminate})
	}
	b.ReportMetric(float64(tI.Nanoseconds())/float64(b.N), "initiator-ns/op")
	b.ReportMetric(float64(tR.Nanoseconds())/float64(b.N), "responder-ns/op")
}
