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

// Info's slices are the machine's, read-only and capped: a holder that
// appends gets its own copy and changes neither the machine nor later
// snapshots.
func TestInfoSlicesCapped(t *testing.T) {
	ini, resp := pskPair(t)
	ini.IKEProposals = mustProps(t, "aes256gcm16-prfsha256-x25519", 1)
	resp.IKEProposals = ini.IKEProposals
	p := newPump(t, ini, resp, 3)
	p.run(func() bool { return up(p.i)() && up(p.r)() })
	for _, n := range []*node{p.i, p.r} {
		in := n.ike.Info()
		if len(in.VirtualIPs) != 1 || len(in.Children) != 1 || len(in.Children[0].LocalTS) == 0 {
			t.Fatalf("%s: %d virtual IPs, %d children", n.name, len(in.VirtualIPs), len(in.Children))
		}
		vip, spi, ts := in.VirtualIPs[0], in.Children[0].InSPI, in.Children[0].LocalTS[0]
		_ = append(in.VirtualIPs, natIP)
		_ = append(in.Children, ChildInfo{InSPI: 1})
		_ = append(in.Children[0].LocalTS, testTS)
		_ = append(in.Capabilities.SignatureHashes, 0)
		n.ike.Handle(p.now, Tick{}) // a new input: a new Child SA list
		again := n.ike.Info()
		if len(again.VirtualIPs) != 1 || again.VirtualIPs[0] != vip || len(again.Children) != 1 ||
			again.Children[0].InSPI != spi || len(again.Children[0].LocalTS) != 1 || again.Children[0].LocalTS[0] != ts {
			t.Fatalf("%s: the machine changed through a snapshot: %+v", n.name, again)
		}
		if cap(in.VirtualIPs) != len(in.VirtualIPs) || cap(in.Children) != len(in.Children) {
			t.Fatalf("%s: snapshot slices not capped", n.name)
		}
	}
}
