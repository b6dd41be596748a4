package sa

import (
	"bytes"
	"testing"
)

// A responder resends its IKE_SA_INIT response to a retransmission of
// the request (RFC 7296 §2.1) while it is half-open, and only then: a
// changed request or one after IKE_AUTH is dropped.
func TestInitRequestResent(t *testing.T) {
	ini, resp := pskPair(t)
	now := epoch
	i, out := NewInitiator(ini, now, nil)
	req := out.Datagrams[0]
	r, rout := NewResponder(resp, now, nil, Datagram{Local: req.Remote, Remote: req.Local, Data: req.Data}, nil)
	first := rout.Datagrams[0]
	changed := bytes.Clone(req.Data)
	changed[len(changed)-1] ^= 1
	for _, tc := range []struct {
		name   string
		data   []byte
		resent bool
	}{
		{"same request", req.Data, true},
		{"changed request", changed, false},
		{"same request again", req.Data, true},
	} {
		o := r.Handle(now, Datagram{Local: req.Remote, Remote: req.Local, Data: tc.data})
		switch {
		case tc.resent && (len(o.Datagrams) != 1 || !bytes.Equal(o.Datagrams[0].Data, first.Data)):
			t.Fatalf("%s: %d datagrams, want the cached response", tc.name, len(o.Datagrams))
		case !tc.resent && len(o.Datagrams) != 0:
			t.Fatalf("%s: answered", tc.name)
		}
	}
	if st := r.Stats(); st.ResponsesResent != 2 || st.Drops[DropUnexpected] != 1 {
		t.Fatalf("stats %+v", st)
	}
	authExchange(t, now, i, r, first)
	if o := r.Handle(now, Datagram{Local: req.Remote, Remote: req.Local, Data: req.Data}); len(o.Datagrams) != 0 {
		t.Fatal("IKE_SA_INIT answered after IKE_AUTH")
	}
}
