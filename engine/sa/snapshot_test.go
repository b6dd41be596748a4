package sa

import (
	"testing"
)

// Info is built once per input: repeated calls cost nothing, and every
// input (here each step of the handshake) is seen by the next call.
func TestInfoSnapshotPerInput(t *testing.T) {
	ini, resp := pskPair(t)
	ini.IKEProposals = mustProps(t, "aes256gcm16-prfsha256-x25519", 1)
	resp.IKEProposals = ini.IKEProposals
	now := epoch
	i, out := NewInitiator(ini, now, nil)
	if st := i.Info().State; st != StateConnecting {
		t.Fatalf("initiator %v", st)
	}
	if n := testing.AllocsPerRun(100, func() { _ = i.Info() }); n != 0 {
		t.Fatalf("Info allocates %.0f times between inputs", n)
	}
	d := out.Datagrams[0]
	r, rout := NewResponder(resp, now, nil, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data}, nil)
	steps := []struct {
		name   string
		m      *IKE
		peer   *IKE
		wantI  State
		wantCh int
	}{
		{"IKE_SA_INIT response", i, r, StateAuthenticating, 0},
		{"IKE_AUTH request", r, i, StateEstablished, 1},
		{"IKE_AUTH response", i, r, StateEstablished, 1},
	}
	d = rout.Datagrams[0]
	for _, st := range steps {
		before := st.m.Info()
		o := st.m.Handle(now, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data})
		after := st.m.Info()
		if after.State != st.wantI || len(after.Children) != st.wantCh {
			t.Fatalf("%s: state %v children %d (before: %v %d)", st.name, after.State, len(after.Children), before.State, len(before.Children))
		}
		if len(o.Datagrams) > 0 {
			d = o.Datagrams[0]
		}
	}
	if got := i.Info().Children[0].Algorithms; got == "" {
		t.Fatalf("child algorithms %q", got)
	}
	i.Handle(now, Command{Kind: CmdTerminate})
	if st := i.Info().State; st == StateEstablished {
		t.Fatal("terminate not seen by Info")
	}
	r.Handle(now, Command{Kind: CmdTerminate})
}
