package sa

import "testing"

// Once IKE_AUTH is done neither side keeps the IKE_SA_INIT state (both
// messages, nonces, DH key), and an idle IKE SA keeps its keys but not
// its cipher state: per-SA memory for the SA's lifetime.
func TestInitStateDropped(t *testing.T) {
	for _, tc := range []struct {
		name  string
		props string
	}{
		{"x25519", "aes256gcm16-prfsha256-x25519"},
		{"modp2048", "aes128-sha256-modp2048"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ini, resp := pskPair(t)
			ini.IKEProposals = mustProps(t, tc.props, 1)
			resp.IKEProposals = ini.IKEProposals
			now := epoch
			i, out := NewInitiator(ini, now, nil)
			d := out.Datagrams[0]
			r, rout := NewResponder(resp, now, nil, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data}, nil)
			if r.init == nil {
				t.Fatal("responder dropped the IKE_SA_INIT state before IKE_AUTH")
			}
			authExchange(t, now, i, r, rout.Datagrams[0])
			if i.init != nil || r.init != nil {
				t.Fatalf("IKE_SA_INIT state kept: initiator %v responder %v", i.init != nil, r.init != nil)
			}
			// SK_pi and SK_pr signed IKE_AUTH and are gone (RFC 7296 §2.15).
			for _, m := range []*IKE{i, r} {
				if k := m.cur.keys; k.PI.Len() != 0 || k.PR.Len() != 0 || k.D.Len() == 0 || k.EI.Len() == 0 {
					t.Fatalf("keys after IKE_AUTH: SK_pi %d SK_pr %d SK_d %d SK_ei %d bytes", k.PI.Len(), k.PR.Len(), k.D.Len(), k.EI.Len())
				}
			}
			// Idle: the IKE ciphers are parked; the DELETE exchange builds
			// them again on both sides.
			if i.cur.out != nil || r.cur.out != nil {
				t.Fatalf("ciphers kept while idle: initiator %v responder %v", i.cur.out != nil, r.cur.out != nil)
			}
			o := i.Handle(now, Command{Kind: CmdTerminate})
			if len(o.Datagrams) != 1 {
				t.Fatalf("DELETE: %d datagrams", len(o.Datagrams))
			}
			d = o.Datagrams[0]
			o = r.Handle(now, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data})
			if r.State() != StateClosed || len(o.Datagrams) != 1 {
				t.Fatalf("responder %v after DELETE, %d datagrams", r.State(), len(o.Datagrams))
			}
			d = o.Datagrams[0]
			i.Handle(now, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data})
			if i.State() != StateClosed || i.Stats().Responses == 0 {
				t.Fatalf("initiator %v after the DELETE response (responses %d)", i.State(), i.Stats().Responses)
			}
		})
	}
}
