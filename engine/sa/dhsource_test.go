package sa

import (
	"errors"
	"io"
	"testing"

	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

// countingDH counts the pairs asked for; fail makes it refuse.
type countingDH struct {
	n    map[ike.GroupID]int
	fail bool
}

func (c *countingDH) GenerateDH(g ike.GroupID, rng io.Reader) (*transform.DHKey, error) {
	if c.fail {
		return nil, errors.New("no key")
	}
	c.n[g]++
	return transform.GenerateDH(g, rng)
}

// Config.DH makes every KE pair of a handshake; a source that fails fails
// the IKE SA with a reason.
func TestDHSource(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail bool
	}{{"used", false}, {"failing", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ini, resp := pskPair(t)
			ini.IKEProposals = mustProps(t, "aes256gcm16-prfsha256-x25519", 1)
			resp.IKEProposals = ini.IKEProposals
			di, dr := &countingDH{n: map[ike.GroupID]int{}, fail: tc.fail}, &countingDH{n: map[ike.GroupID]int{}}
			ini.DH, resp.DH = di, dr
			now := epoch
			i, out := NewInitiator(ini, now, nil)
			if tc.fail {
				if i.State() != StateClosed || i.Info().DownReason != ReasonInternal || !out.Done {
					t.Fatalf("state %v reason %v done %v", i.State(), i.Info().DownReason, out.Done)
				}
				return
			}
			d := out.Datagrams[0]
			r, rout := NewResponder(resp, now, nil, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data}, nil)
			authExchange(t, now, i, r, rout.Datagrams[0])
			if di.n[ike.GroupCurve25519] != 1 || dr.n[ike.GroupCurve25519] != 1 {
				t.Fatalf("pairs made: initiator %v responder %v", di.n, dr.n)
			}
		})
	}
}

// reusingDH shares one pair between the IKE_SA_INIT responses it answers.
type reusingDH struct {
	countingDH
	pair *transform.SharedDH
	init int
}

func (c *reusingDH) InitResponderDH(g ike.GroupID, rng io.Reader) (*transform.DHKey, error) {
	c.init++
	if c.pair == nil {
		k, err := transform.GenerateDH(g, rng)
		if err != nil {
			return nil, err
		}
		c.pair = transform.ShareDH(k)
	}
	h, _ := c.pair.Handle()
	return h, nil
}

// A ReusingDHSource answers the responder's IKE_SA_INIT (RFC 7296 §2.12):
// two handshakes on one shared pair both establish, and the responder gives its handles back.
func TestReusingDHSource(t *testing.T) {
	ini, resp := pskPair(t)
	ini.IKEProposals = mustProps(t, "aes256gcm16-prfsha256-x25519", 1)
	resp.IKEProposals = ini.IKEProposals
	dr := &reusingDH{countingDH: countingDH{n: map[ike.GroupID]int{}}}
	resp.DH = dr
	now := epoch
	for range 2 {
		i, out := NewInitiator(ini, now, nil)
		d := out.Datagrams[0]
		r, rout := NewResponder(resp, now, nil, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data}, nil)
		authExchange(t, now, i, r, rout.Datagrams[0])
	}
	if dr.init != 2 || dr.n[ike.GroupCurve25519] != 0 {
		t.Fatalf("InitResponderDH %d, GenerateDH %v", dr.init, dr.n)
	}
	if n := dr.pair.Handles(); n != 0 {
		t.Fatalf("the responders keep %d handles after IKE_AUTH", n)
	}
}
