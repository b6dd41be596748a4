package sa

import (
	"encoding/binary"
	"testing"

	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

// lastTo returns the last datagram seen going to n with the exchange and
// direction given.
func lastTo(p *pump, n *node, exch ike.ExchangeType, response bool) Datagram {
	for i := len(p.seen) - 1; i >= 0; i-- {
		pk := p.seen[i]
		h, err := ike.DecodeHeader(pk.dg.Data)
		if err == nil && pk.to == n && h.Exchange == exch && h.IsResponse() == response {
			return pk.dg
		}
	}
	return Datagram{}
}

func TestHostileInput(t *testing.T) {
	p := establish(t, 120, nil)
	p.command(p.i, Command{Kind: CmdLiveness})
	p.settle()
	lastReq := lastTo(p, p.r, ike.Informational, false)
	auth := lastTo(p, p.r, ike.IKEAuth, false)
	spii, spir := p.r.ike.SPIs()
	hdr := func(exch ike.ExchangeType, flags ike.Flags, id uint32, ps ...ike.Payload) []byte {
		m := ike.Message{Header: ike.Header{SPIi: spii, SPIr: spir, Exchange: exch, Flags: flags, MessageID: id}, Payloads: ps}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[len(c)-i] ^= 0x40
		return c
	}
	bigFrag := hdr(ike.Informational, ike.FlagInitiator, 2, &ike.EncryptedFragment{First: ike.PayloadNotify, Number: 1, Total: 65535, Body: make([]byte, 64)})
	cases := []struct {
		name   string
		data   []byte
		reason DropReason
		resent bool
	}{
		{"empty", nil, DropMalformed, false},
		{"garbage", []byte("hello, this is not IKE at all, not even close......"), DropMalformed, false},
		{"short header", hdr(ike.Informational, ike.FlagInitiator, 2)[:20], DropMalformed, false},
		{"unknown SPI", func() []byte {
			b := hdr(ike.Informational, ike.FlagInitiator, 2, &ike.Encrypted{First: ike.PayloadNone, Body: make([]byte, 32)})
			binary.BigEndian.PutUint64(b, 12345)
			return b
		}(), DropWrongSPI, false},
		{"wrong I flag", hdr(ike.Informational, 0, 2, &ike.Encrypted{Body: make([]byte, 32)}), DropUnexpected, false},
		{"not encrypted", hdr(ike.Informational, ike.FlagInitiator, 2, &ike.Notify{NotifyType: ike.InitialContact}), DropNotEncrypted, false},
		{"bad ICV", flip(lastReq.Data, 1), DropIntegrity, false},
		{"bad ciphertext", flip(lastReq.Data, 20), DropIntegrity, false},
		{"old message ID", auth.Data, DropBadMessageID, false},
		{"future message ID", hdr(ike.Informational, ike.FlagInitiator, 9, &ike.Encrypted{Body: make([]byte, 32)}), DropBadMessageID, false},
		{"response without request", hdr(ike.Informational, ike.FlagInitiator|ike.FlagResponse, 0, &ike.Encrypted{Body: make([]byte, 32)}), DropUnexpected, false},
		{"huge fragment", bigFrag, DropIntegrity, false},
		{"IKE_SA_INIT replay", lastTo(p, p.r, ike.IKESAInit, false).Data, DropUnexpected, false},
		{"critical unknown payload", func() []byte {
			b := hdr(ike.Informational, ike.FlagInitiator, 2, &ike.Unknown{PayloadType: 200, Body: []byte{1}})
			b[ike.HeaderLen+1] |= 0x80
			return b
		}(), DropMalformed, false},
		{"retransmitted request", lastReq.Data, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := p.r.ike.Stats()
			o := p.r.ike.Handle(p.now, Datagram{Local: lastReq.Local, Remote: lastReq.Remote, Data: tc.data})
			after := p.r.ike.Stats()
			if tc.resent {
				if len(o.Datagrams) != 1 || after.ResponsesResent != before.ResponsesResent+1 {
					t.Fatalf("cached response not resent: %d datagrams", len(o.Datagrams))
				}
				return
			}
			if len(o.Datagrams) != 0 || len(o.DataplaneOps) != 0 || len(o.Events) != 0 || o.Done {
				t.Fatalf("hostile datagram produced output: %+v", o)
			}
			if after.Drops[tc.reason] != before.Drops[tc.reason]+1 {
				t.Fatalf("drop counters %v -> %v, want one more %v", before.DropsByReason(), after.DropsByReason(), tc.reason)
			}
		})
	}
	// The SA still works both ways.
	p.command(p.r, Command{Kind: CmdLiveness})
	p.command(p.i, Command{Kind: CmdRekeyChild, SPI: p.i.ike.Info().Children[0].InSPI})
	p.settle()
	if p.i.ike.State() != StateEstablished || p.r.ike.State() != StateEstablished || checkPaired(t, p.i, p.r) != 2 {
		t.Fatal("SA damaged by hostile input")
	}
}

func TestErrorNotifyForBadInnerPayloads(t *testing.T) {
	p := establish(t, 121, nil)
	// An authenticated request whose inner chain carries an unknown
	// critical payload gets UNSUPPORTED_CRITICAL_PAYLOAD (§2.5).
	ss := p.i.ike.cur
	if err := ss.ciphers(); err != nil { // parked while idle
		t.Fatal(err)
	}
	first, inner, err := ike.EncodePayloads([]ike.Payload{&ike.Unknown{PayloadType: 201, Body: []byte{9}}})
	if err != nil {
		t.Fatal(err)
	}
	inner[1] |= 0x80
	b, err := ike.AppendSKHeader(nil, ss.header(ike.Informational, ss.nextReq, false), first, ss.out.SealedLen(len(inner)))
	if err == nil {
		b, err = transform.SealPayload(ss.out, b, inner)
	}
	if err != nil {
		t.Fatal(err)
	}
	o := p.r.ike.Handle(p.now, Datagram{Local: addrR, Remote: addrI, Data: b})
	if len(o.Datagrams) != 1 {
		t.Fatalf("%d datagrams", len(o.Datagrams))
	}
	// Decrypt the answer with the initiator's keys.
	m, _ := ike.Decode(o.Datagrams[0].Data)
	r := p.i.ike.open(ss, m.Header, o.Datagrams[0].Data, m, true)
	n := payloadOf[*ike.Notify](r.payloads)
	if r.drop || n == nil || n.NotifyType != ike.UnsupportedCriticalPayload || len(n.Data) != 1 || n.Data[0] != 201 {
		t.Fatalf("answer %+v", r)
	}
	if p.r.ike.State() != StateEstablished {
		t.Fatal("responder state changed")
	}
}

func TestInvalidSPIReply(t *testing.T) {
	m := ike.Message{Header: ike.Header{SPIi: 1, SPIr: 2, Exchange: ike.Informational, Flags: ike.FlagInitiator, MessageID: 7},
		Payloads: []ike.Payload{&ike.Encrypted{Body: make([]byte, 20)}}}
	b, _ := m.Encode()
	r, ok := InvalidSPIReply(Datagram{Local: addrR, Remote: addrI, Data: b})
	if !ok || r.Remote != addrI || r.Local != addrR {
		t.Fatalf("no reply")
	}
	rm, err := ike.Decode(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	n := payloadOf[*ike.Notify](rm.Payloads)
	if rm.SPIi != 1 || rm.SPIr != 2 || rm.MessageID != 7 || !rm.IsResponse() || rm.IsInitiator() || n == nil || n.NotifyType != ike.InvalidIKESPI {
		t.Fatalf("reply %+v", rm.Header)
	}
	m.Flags |= ike.FlagResponse
	b, _ = m.Encode()
	if _, ok := InvalidSPIReply(Datagram{Data: b}); ok {
		t.Error("answered a response (RFC 7296 §1.5 forbids)")
	}
	if _, ok := InvalidSPIReply(Datagram{Data: []byte{1, 2}}); ok {
		t.Error("answered garbage")
	}
}
