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
// handshake messages: a decoded IKE_SA_INIT takes its copy, one block for
// the Message and payload slice, one for the common payloads, one for the
// Notify payloads, and what the SA and CP bodies need; an encoded message
// one buffer.
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
	cases := []struct {
		name string
		max  float64
		f    func()
	}{
		// copy, Message+payloads, common block, notifies, SA: 2 proposals
		// and their transforms.
		{"Decode IKE_SA_INIT", 7, func() { _, _ = Decode(init) }},
		// payload slice, common block, notifies, CP attributes, SA proposal
		// and transforms, two TS lists.
		{"DecodePayloads IKE_AUTH", 8, func() { _, _ = DecodePayloads(first, inner) }},
		{"Encode IKE_SA_INIT", 1, func() { _, _ = ikeSAInitRequestCached.Encode() }},
		{"Encode IKE_AUTH", 1, func() { _, _ = auth.Encode() }},
		{"EncodePayloads IKE_AUTH", 1, func() { _, _, _ = EncodePayloads(ikeAuthInnerCached) }},
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
