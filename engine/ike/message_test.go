package ike

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"reflect"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		m    *Message
	}{
		{"IKE_SA_INIT request", ikeSAInitRequest()},
		{"IKE_SA_INIT response", ikeSAInitResponse()},
		{"IKE_AUTH request", ikeAuthRequest(t)},
		{"COOKIE reply", &Message{Header: Header{SPIi: 1, Exchange: IKESAInit, Flags: FlagResponse},
			Payloads: []Payload{&Notify{NotifyType: Cookie, Data: seq(32, 7)}}}},
		{"INVALID_KE_PAYLOAD", &Message{Header: Header{SPIi: 1, Exchange: IKESAInit, Flags: FlagResponse},
			Payloads: []Payload{NotifyGroup(GroupMODP2048)}}},
		{"empty (no payloads)", &Message{Header: Header{SPIi: 1, SPIr: 2, Exchange: Informational, MessageID: 7}}},
		{"SKF", &Message{Header: Header{SPIi: 1, SPIr: 2, Exchange: IKEAuth, MessageID: 1},
			Payloads: []Payload{&EncryptedFragment{First: PayloadIDi, Number: 1, Total: 3, Body: seq(100, 0)}}}},
		{"unknown non-critical kept", &Message{Header: Header{SPIi: 1, Exchange: IKESAInit},
			Payloads: []Payload{&Unknown{PayloadType: 200, Body: []byte{1, 2, 3}}, &Nonce{Data: seq(16, 0)}}}},
		{"cleartext before SK", &Message{Header: Header{SPIi: 1, SPIr: 2, Exchange: Informational, MessageID: 3},
			Payloads: []Payload{&VendorID{Data: []byte("x")}, &Encrypted{First: PayloadNone, Body: seq(24, 0)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { roundTripMessage(t, tt.m) })
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	ps := append(ikeSAInitRequest().Payloads, ikeSAInitResponse().Payloads...)
	ps = append(ps, ikeAuthInner()...)
	ps = append(ps,
		&Cert{Encoding: CertX509Signature, Data: seq(300, 0)},
		&Auth{Method: AuthDigitalSignature, Data: seq(70, 1)},
		&Delete{Protocol: ProtoIKE},
		&Delete{Protocol: ProtoESP, SPIs: []uint32{0xc1c2c3c4, 1}},
		&EAP{Message: []byte{1, 2, 0, 5, 1}},
		&Notify{Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, NotifyType: RekeySA},
		&Notify{NotifyType: CloneIKESA},
		IdentificationFromAddr(netip.MustParseAddr("2001:db8::1"), true),
		IdentificationFromAddr(addrInit, false),
		&Identification{IDType: IDNull},
		&Config{CFGType: CFGReply, Attributes: []CPAttribute{
			CPAddr(CPInternalIP4Address, netip.MustParseAddr("10.1.0.2")),
			CPAddr(CPInternalIP4Netmask, netip.MustParseAddr("255.255.255.0")),
			CPAddr(CPInternalIP4DNS, netip.MustParseAddr("10.1.0.53")),
			CPPrefix(CPInternalIP6Address, netip.MustParsePrefix("2001:db8:1::2/64")),
			CPAddr(CPInternalIP6DNS, netip.MustParseAddr("2001:db8::53")),
			CPPrefix(CPInternalIP4Subnet, netip.MustParsePrefix("10.0.0.0/8")),
			CPPrefix(CPInternalIP6Subnet, netip.MustParsePrefix("2001:db8::/32")),
			CPAddr(CPPCSCFIP4Address, netip.MustParseAddr("10.1.0.5")),
			CPAddr(CPPCSCFIP6Address, netip.MustParseAddr("2001:db8::5")),
			{Type: CPApplicationVersion, Value: []byte("mifsec 1")},
			{Type: CPSupportedAttributes, Value: []byte{0, 1, 0, 3}},
			{Type: CPInternalDNSDomain, Value: []byte("example.net")},
		}},
		&Config{CFGType: CFGAck},
		&Unknown{PayloadType: PayloadGSPM, Body: []byte{9}},
	)
	for _, p := range ps {
		t.Run(p.Type().String(), func(t *testing.T) {
			first, b, err := EncodePayloads([]Payload{p})
			if err != nil {
				t.Fatal(err)
			}
			if first != p.Type() {
				t.Fatalf("first = %v, want %v", first, p.Type())
			}
			if got := int(binary.BigEndian.Uint16(b[2:4])); got != len(b) || b[0] != 0 {
				t.Fatalf("generic header %x: length %d, want %d", b[:4], got, len(b))
			}
			got, err := DecodePayloads(first, b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, []Payload{p}) {
				t.Fatalf("got %#v\nwant %#v", got[0], p)
			}
		})
	}
	// The whole IKE_AUTH inner chain at once.
	first, b, err := EncodePayloads(ikeAuthInner())
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePayloads(first, b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ikeAuthInner()) {
		t.Fatal("IKE_AUTH inner chain differs after round trip")
	}
}

// Known bytes: an SA payload with one ESP proposal, written from RFC 7296
// §3.3 by hand.
func TestSAKnownBytes(t *testing.T) {
	want := unhex(t, `
		00 00 00 2c  # generic header: next NONE, length 44
		00 00 00 28 01 03 04 03  # proposal: last, length 40, #1, ESP, SPI size 4, 3 transforms
		c1 c2 c3 c4  # SPI
		03 00 00 0c 01 00 00 14 800e 0100  # ENCR_AES_GCM_16, Key Length 256
		03 00 00 08 04 00 00 13  # D-H 19
		00 00 00 08 05 00 00 00  # ESN none`)
	sa := &SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoESP, SPI: []byte{0xc1, 0xc2, 0xc3, 0xc4}, Transforms: []Transform{
		{Type: TransformENCR, ID: uint16(EncrAESGCM16), KeyLength: 256},
		{Type: TransformDH, ID: uint16(GroupECP256)},
		{Type: TransformESN, ID: uint16(ESNNone)},
	}}}}
	_, b, err := EncodePayloads([]Payload{sa})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("got  %x\nwant %x", b, want)
	}
}

type chachaVectors struct {
	Vectors []struct {
		Name      string `json:"name"`
		AAD       string `json:"aad_ike_header_plus_sk_generic_header"`
		IV        string `json:"iv"`
		Plaintext string `json:"plaintext"`
		Cipher    string `json:"ciphertext"`
		ICV       string `json:"icv"`
		Full      string `json:"full_ike_message"`
	} `json:"vectors"`
}

// RFC 7634 Appendix B: an INFORMATIONAL message with an SK payload. Checks the
// header and SK decoding, the AAD offset (RFC 5282 §5.1), the inner chain and
// byte-exact re-encoding.
func TestRFC7634AppendixB(t *testing.T) {
	raw, err := os.ReadFile("testdata/chacha20poly1305_rfc7634.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs chachaVectors
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range vs.Vectors {
		if v.Full == "" {
			continue
		}
		n++
		full := unhex(t, v.Full)
		m, err := Decode(full)
		if err != nil {
			t.Fatal(err)
		}
		wantHdr := Header{SPIi: 0xc0c1c2c3c4c5c6c7, SPIr: 0xd0d1d2d3d4d5d6d7, Exchange: Informational, MessageID: 9}
		if m.Header != wantHdr {
			t.Fatalf("header %+v, want %+v", m.Header, wantHdr)
		}
		if len(m.Payloads) != 1 {
			t.Fatalf("%d payloads", len(m.Payloads))
		}
		sk, ok := m.Payloads[0].(*Encrypted)
		if !ok || sk.First != PayloadNotify {
			t.Fatalf("payload %#v, want SK with first inner N", m.Payloads[0])
		}
		wantBody := append(append(unhex(t, v.IV), unhex(t, v.Cipher)...), unhex(t, v.ICV)...)
		if !bytes.Equal(sk.Body, wantBody) {
			t.Fatalf("SK body %x, want %x", sk.Body, wantBody)
		}
		off, err := EncryptedOffset(full)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(full[:off], unhex(t, v.AAD)) {
			t.Fatalf("AAD %x, want %x", full[:off], v.AAD)
		}
		// Plaintext = inner chain | Pad Length (0 here).
		pt := unhex(t, v.Plaintext)
		inner, err := DecodePayloads(sk.First, pt[:len(pt)-1-int(pt[len(pt)-1])])
		if err != nil {
			t.Fatal(err)
		}
		want := []Payload{&Notify{NotifyType: SetWindowSize, Data: []byte{0, 0, 0, 10}}}
		if !reflect.DeepEqual(inner, want) {
			t.Fatalf("inner %#v", inner[0])
		}
		first, ib, err := EncodePayloads(want)
		if err != nil || first != PayloadNotify || !bytes.Equal(ib, pt[:len(pt)-1]) {
			t.Fatalf("inner encode %v %x %v", first, ib, err)
		}
		b, err := m.Encode()
		if err != nil || !bytes.Equal(b, full) {
			t.Fatalf("re-encode %x %v", b, err)
		}
		// Sealing path: encode with a placeholder body, then the offset is the same.
		m2 := &Message{Header: wantHdr, Payloads: []Payload{&Encrypted{First: PayloadNotify, Body: make([]byte, len(wantBody))}}}
		b2, _ := m2.Encode()
		if off2, _ := EncryptedOffset(b2); off2 != off || !bytes.Equal(b2[:off2], full[:off]) {
			t.Fatalf("sealing AAD %x", b2[:off2])
		}
	}
	if n == 0 {
		t.Fatal("no IKE vector in testdata")
	}
}

func TestEncryptedOffset(t *testing.T) {
	m := &Message{Header: Header{SPIi: 1, SPIr: 2, Exchange: IKEAuth, MessageID: 1},
		Payloads: []Payload{&VendorID{Data: []byte("abc")}, &EncryptedFragment{First: PayloadIDi, Number: 2, Total: 2, Body: seq(10, 0)}}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	off, err := EncryptedOffset(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := HeaderLen + 7 + FragmentHeaderLen; off != want || !bytes.Equal(b[off:], seq(10, 0)) {
		t.Fatalf("offset %d, want %d", off, want)
	}
	m.Payloads = m.Payloads[:1]
	b, _ = m.Encode()
	if _, err := EncryptedOffset(b); err == nil {
		t.Fatal("no error for a message without SK")
	}
}

func TestAccessors(t *testing.T) {
	id := &Identification{IDType: IDFQDN, Data: []byte("a.b")}
	if got := id.RestOfIDPayload(); !bytes.Equal(got, []byte{2, 0, 0, 0, 'a', '.', 'b'}) {
		t.Errorf("RestOfIDPayload = %x", got)
	}
	if a, ok := IdentificationFromAddr(addrResp, true).Addr(); !ok || a != addrResp {
		t.Errorf("Addr = %v %v", a, ok)
	}
	if _, ok := id.Addr(); ok {
		t.Error("Addr of an FQDN")
	}
	if g, ok := NotifyGroup(GroupECP384).Group(); !ok || g != GroupECP384 {
		t.Errorf("Group = %v %v", g, ok)
	}
	if hs, ok := NotifyHashAlgorithms(HashSHA256, HashIdentity).HashAlgorithms(); !ok || !reflect.DeepEqual(hs, []HashAlgorithm{HashSHA256, HashIdentity}) {
		t.Errorf("HashAlgorithms = %v", hs)
	}
	n := &Notify{NotifyType: AdditionalIP6Address, Data: netip.MustParseAddr("2001:db8::9").AsSlice()}
	if a, ok := n.Addr(); !ok || a.String() != "2001:db8::9" {
		t.Errorf("notify Addr = %v", a)
	}
	cr := &CertReq{Encoding: CertX509Signature, Data: seq(40, 0)}
	if hs, ok := cr.Authorities(); !ok || len(hs) != 2 || !bytes.Equal(hs[1], seq(20, 20)) {
		t.Errorf("Authorities = %x", hs)
	}
	if _, ok := (&CertReq{Data: seq(21, 0)}).Authorities(); ok {
		t.Error("Authorities of 21 octets")
	}
	for _, tt := range []struct {
		a    CPAttribute
		want string
	}{
		{CPAddr(CPPCSCFIP4Address, netip.MustParseAddr("10.0.0.5")), "10.0.0.5"},
		{CPAddr(CPPCSCFIP6Address, netip.MustParseAddr("2001:db8::5")), "2001:db8::5"},
		{CPAddr(CPInternalIP4Address, netip.MustParseAddr("10.0.0.2")), "10.0.0.2"},
	} {
		if a, ok := tt.a.Addr(); !ok || a.String() != tt.want {
			t.Errorf("%v Addr = %v %v", tt.a.Type, a, ok)
		}
	}
	for _, tt := range []struct {
		a    CPAttribute
		want string
	}{
		{CPPrefix(CPInternalIP6Address, netip.MustParsePrefix("2001:db8::2/64")), "2001:db8::2/64"},
		{CPPrefix(CPInternalIP4Subnet, netip.MustParsePrefix("10.1.0.0/16")), "10.1.0.0/16"},
		{CPPrefix(CPInternalIP4Subnet, netip.MustParsePrefix("0.0.0.0/0")), "0.0.0.0/0"},
	} {
		if p, ok := tt.a.Prefix(); !ok || p.String() != tt.want {
			t.Errorf("%v Prefix = %v %v", tt.a.Type, p, ok)
		}
	}
	if _, ok := (CPAttribute{Type: CPInternalIP4Subnet, Value: []byte{10, 0, 0, 0, 255, 0, 255, 0}}).Prefix(); ok {
		t.Error("non-contiguous netmask accepted")
	}
	if got := (TrafficSelector{Start: addrInit, End: addrInit}).TSType(); got != TSIPv4AddrRange {
		t.Errorf("TSType = %v", got)
	}
}

func TestDecodeErrorsAreTyped(t *testing.T) {
	_, err := Decode([]byte{1, 2, 3})
	var e *Error
	if !errors.As(err, &e) || e.Notify != InvalidSyntax || e.Reason == "" {
		t.Fatalf("err = %#v", err)
	}
}

// Decode keeps its own copy: the caller may reuse the datagram buffer.
func TestDecodeDoesNotAlias(t *testing.T) {
	b, err := ikeSAInitRequest().Encode()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := HeaderLen; i < len(b); i++ {
		b[i] = 0xff
	}
	if !reflect.DeepEqual(m, ikeSAInitRequest()) {
		t.Fatal("decoded message changed with its input buffer")
	}
}
