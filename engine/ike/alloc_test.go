package ike

import (
	"reflect"
	"testing"
)

// TestDecodeRepeatedCommonPayloads decodes chains where the common types
// appear more than once (the first from the shared block, the others
// allocated alone), IDr and TSr among them, and checks each decodes to
// what was encoded.
func TestDecodeRepeatedCommonPayloads(t *testing.T) {
	inner := ikeAuthInner()
	var ps []Payload
	ps = append(ps, inner...)
	ps = append(ps, inner...) // every type twice
	ps = append(ps, ikeSAInitRequest().Payloads...)
	ps = append(ps, ikeSAInitRequest().Payloads...)
	first, b, err := EncodePayloads(ps)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePayloads(first, b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ps) {
		t.Fatalf("decoded chain differs:\n got %#v\nwant %#v", got, ps)
	}
	for i, p := range got {
		for j, q := range got[:i] {
			if p == q {
				t.Fatalf("payloads %d and %d are one struct", j, i)
			}
		}
	}
	m := &Message{Header: Header{SPIi: 1, Exchange: IKESAInit}, Payloads: ps}
	roundTripMessage(t, m)

	// The proposals' transforms share one array: appending to one must
	// not overwrite the next.
	sa := got[2*len(inner)].(*SA)
	want := append([]Transform(nil), sa.Proposals[1].Transforms...)
	sa.Proposals[0].Transforms = append(sa.Proposals[0].Transforms, Transform{Type: TransformESN})
	if !reflect.DeepEqual(sa.Proposals[1].Transforms, want) {
		t.Fatal("appending to a proposal's transforms changed the next proposal")
	}
}

// TestCodecAllocs bounds the allocations of decoding and encoding
// handshake messages: a decoded message takes its copy, one block for the
// Message, payload slice and SK payload, one for the common payloads and
// the first Notifies, and what the bodies need (SA proposals and
// transforms, CP attributes, TS lists); an encoded message one buffer.
func TestCodecAllocs(t *testing.T) {
	init, err := ikeSAInitRequest().Encode()
	if err != nil {
		t.Fatal(err)
	}
	first, inner, err := EncodePayloads(ikeAuthInner())
	if err != nil {
		t.Fatal(err)
	}
	auth := ikeAuthRequest(t)
	outer, err := auth.Encode()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		max  float64
		f    func()
	}{
		// copy, Message block, common block, SA (2 proposals: proposals,
		// transforms), VendorID.
		{"Decode IKE_SA_INIT", 6, func() { _, _ = Decode(init) }},
		{"Decode IKE_AUTH (SK)", 2, func() { _, _ = Decode(outer) }},
		// payload slice, common block, fifth Notify, CP attributes, SA
		// (one block), two TS lists.
		{"DecodePayloads IKE_AUTH", 7, func() { _, _ = DecodePayloads(first, inner) }},
		{"Encode IKE_SA_INIT", 1, func() { _, _ = ikeSAInitRequestCached.Encode() }},
		{"Encode IKE_AUTH", 1, func() { _, _ = auth.Encode() }},
		{"EncodePayloads IKE_AUTH", 1, func() { _, _, _ = EncodePayloads(ikeAuthInnerCached) }},
		{"NotifyHashAlgorithms", 1, func() { _ = NotifyHashAlgorithms(HashSHA256, HashSHA384, HashSHA512, HashIdentity) }},
	}
	for _, c := range cases {
		if got := testing.AllocsPerRun(50, c.f); got > c.max {
			t.Errorf("%s: %v allocations, want at most %v", c.name, got, c.max)
		}
	}
}

var (
	ikeSAInitRequestCached = ikeSAInitRequest()
	ikeAuthInnerCached     = ikeAuthInner()
)
