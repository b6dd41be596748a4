package ike

import (
	"errors"
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
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
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

// TestAppendSealedHeader checks AppendSKHeader and AppendSKFHeader against
// Encode and EncryptedOffset of the same message with its body, and their
// errors.
func TestAppendSealedHeader(t *testing.T) {
	h := Header{SPIi: 0x0102030405060708, SPIr: 0x1112131415161718, Exchange: IKEAuth, Flags: FlagInitiator | FlagResponse, MessageID: 7}
	cases := []struct {
		name string
		sk   Payload
		got  func(dst []byte, n int) ([]byte, error)
	}{
		{"SK", &Encrypted{First: PayloadIDi}, func(dst []byte, n int) ([]byte, error) { return AppendSKHeader(dst, h, PayloadIDi, n) }},
		{"SKF 1/3", &EncryptedFragment{First: PayloadIDi, Number: 1, Total: 3},
			func(dst []byte, n int) ([]byte, error) { return AppendSKFHeader(dst, h, PayloadIDi, 1, 3, n) }},
		{"SKF 3/3", &EncryptedFragment{Number: 3, Total: 3},
			func(dst []byte, n int) ([]byte, error) { return AppendSKFHeader(dst, h, PayloadNone, 3, 3, n) }},
	}
	for _, c := range cases {
		for _, n := range []int{0, 1, 100, maxPayloadLen - FragmentHeaderLen} {
			switch sk := c.sk.(type) {
			case *Encrypted:
				sk.Body = make([]byte, n)
			case *EncryptedFragment:
				sk.Body = make([]byte, n)
			}
			whole, err := (&Message{Header: h, Payloads: []Payload{c.sk}}).Encode()
			if err != nil {
				t.Fatal(err)
			}
			off, err := EncryptedOffset(whole)
			if err != nil {
				t.Fatal(err)
			}
			prefix := []byte{0xee} // appends after what dst holds
			got, err := c.got(prefix, n)
			if err != nil {
				t.Fatalf("%s body %d: %v", c.name, n, err)
			}
			if !reflect.DeepEqual(got[1:], whole[:off]) || got[0] != 0xee {
				t.Fatalf("%s body %d:\n got %x\nwant %x", c.name, n, got[1:], whole[:off])
			}
			if cap(got)-len(got) < n {
				t.Fatalf("%s body %d: room for %d octets of body", c.name, n, cap(got)-len(got))
			}
		}
	}
	for _, bad := range []func() ([]byte, error){
		func() ([]byte, error) { return AppendSKHeader(nil, h, PayloadIDi, -1) },
		func() ([]byte, error) { return AppendSKHeader(nil, h, PayloadIDi, maxPayloadLen-PayloadHeaderLen+1) },
		func() ([]byte, error) { return AppendSKFHeader(nil, h, PayloadIDi, 0, 3, 10) },
		func() ([]byte, error) { return AppendSKFHeader(nil, h, PayloadIDi, 4, 3, 10) },
		func() ([]byte, error) {
			return AppendSKFHeader(nil, h, PayloadIDi, 1, 1, maxPayloadLen-FragmentHeaderLen+1)
		},
	} {
		var e *EncodeError
		if _, err := bad(); !errors.As(err, &e) {
			t.Fatalf("want an *EncodeError, got %v", err)
		}
	}
}
