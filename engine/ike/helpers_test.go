package ike

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var clean []string
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "#")
		clean = append(clean, strings.Fields(line)...)
	}
	b, err := hex.DecodeString(strings.Join(clean, ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

var (
	addrInit = netip.MustParseAddr("192.0.2.1")
	addrResp = netip.MustParseAddr("198.51.100.1")
)

// ikeSAInitRequest is a typical IKE_SA_INIT request (RFC 7296 §1.2, App. C.1)
// in strongSwan's order, with an AEAD and a CBC proposal.
func ikeSAInitRequest() *Message {
	return &Message{
		Header: Header{SPIi: 0x0102030405060708, Exchange: IKESAInit, Flags: FlagInitiator},
		Payloads: []Payload{
			&SA{Proposals: []Proposal{
				{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
					{Type: TransformENCR, ID: uint16(EncrAESGCM16), KeyLength: 256},
					{Type: TransformENCR, ID: uint16(EncrChaCha20Poly1305)},
					{Type: TransformPRF, ID: uint16(PRFHMACSHA256)},
					{Type: TransformDH, ID: uint16(GroupCurve25519)},
					{Type: TransformDH, ID: uint16(GroupECP256)},
				}},
				{Number: 2, Protocol: ProtoIKE, Transforms: []Transform{
					{Type: TransformENCR, ID: uint16(EncrAESCBC), KeyLength: 128},
					{Type: TransformPRF, ID: uint16(PRFHMACSHA256)},
					{Type: TransformINTEG, ID: uint16(IntegHMACSHA256_128)},
					{Type: TransformDH, ID: uint16(GroupMODP2048)},
				}},
			}},
			&KE{Group: GroupCurve25519, Data: seq(32, 0x40)},
			&Nonce{Data: seq(32, 0x80)},
			&Notify{NotifyType: NATDetectionSourceIP, Data: seq(20, 1)},
			&Notify{NotifyType: NATDetectionDestinationIP, Data: seq(20, 2)},
			&Notify{NotifyType: IKEv2FragmentationSupported},
			NotifyHashAlgorithms(HashSHA256, HashSHA384, HashSHA512, HashIdentity),
			&VendorID{Data: []byte("mifsec")},
		},
	}
}

func ikeSAInitResponse() *Message {
	return &Message{
		Header: Header{SPIi: 0x0102030405060708, SPIr: 0x1112131415161718, Exchange: IKESAInit, Flags: FlagResponse},
		Payloads: []Payload{
			&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
				{Type: TransformENCR, ID: uint16(EncrAESGCM16), KeyLength: 256},
				{Type: TransformPRF, ID: uint16(PRFHMACSHA256)},
				{Type: TransformDH, ID: uint16(GroupCurve25519)},
			}}}},
			&KE{Group: GroupCurve25519, Data: seq(32, 0x60)},
			&Nonce{Data: seq(32, 0xa0)},
			&Notify{NotifyType: NATDetectionSourceIP, Data: seq(20, 3)},
			&Notify{NotifyType: NATDetectionDestinationIP, Data: seq(20, 4)},
			&CertReq{Encoding: CertX509Signature, Data: seq(40, 0)},
			&Notify{NotifyType: IKEv2FragmentationSupported},
		},
	}
}

// ikeAuthInner is the plaintext chain of an IKE_AUTH request (App. C.2)
// asking for a virtual IP and announcing MOBIKE.
func ikeAuthInner() []Payload {
	return []Payload{
		&Identification{IDType: IDFQDN, Data: []byte("ue.example.net")},
		&Notify{NotifyType: InitialContact},
		&Identification{Responder: true, IDType: IDFQDN, Data: []byte("gw.example.net")},
		&Auth{Method: AuthSharedKeyMIC, Data: seq(32, 0x33)},
		&Config{CFGType: CFGRequest, Attributes: []CPAttribute{
			CPRequest(CPInternalIP4Address), CPRequest(CPInternalIP4DNS),
			CPRequest(CPInternalIP6Address), CPRequest(CPInternalIP6DNS),
			CPRequest(CPPCSCFIP4Address), CPRequest(CPPCSCFIP6Address),
		}},
		&Notify{NotifyType: ESPTFCPaddingNotSupported},
		&Notify{NotifyType: NonFirstFragmentsAlso},
		&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoESP, SPI: []byte{0xc1, 0xc2, 0xc3, 0xc4}, Transforms: []Transform{
			{Type: TransformENCR, ID: uint16(EncrAESGCM16), KeyLength: 128},
			{Type: TransformESN, ID: uint16(ESNNone)},
		}}}},
		&TrafficSelectors{Selectors: []TrafficSelector{
			{EndPort: 0xffff, Start: netip.MustParseAddr("0.0.0.0"), End: netip.MustParseAddr("255.255.255.255")},
			{EndPort: 0xffff, Start: netip.MustParseAddr("::"), End: netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
		}},
		&TrafficSelectors{Responder: true, Selectors: []TrafficSelector{
			{IPProtocol: 17, StartPort: 53, EndPort: 53, Start: netip.MustParseAddr("10.0.0.0"), End: netip.MustParseAddr("10.255.255.255")},
		}},
		&Notify{NotifyType: MOBIKESupported},
		&Notify{NotifyType: AdditionalIP4Address, Data: addrInit.AsSlice()},
		&Notify{NotifyType: CloneIKESASupported},
	}
}

// ikeAuthRequest wraps an encrypted body (contents irrelevant to the codec).
func ikeAuthRequest(t testing.TB) *Message {
	first, _, err := EncodePayloads(ikeAuthInner())
	if err != nil {
		t.Fatal(err)
	}
	return &Message{
		Header:   Header{SPIi: 0x0102030405060708, SPIr: 0x1112131415161718, Exchange: IKEAuth, Flags: FlagInitiator, MessageID: 1},
		Payloads: []Payload{&Encrypted{First: first, Body: seq(400, 9)}},
	}
}

// roundTripMessage checks encode → decode equals, and that re-encoding gives the same bytes.
func roundTripMessage(t *testing.T, m *Message) []byte {
	t.Helper()
	b, err := m.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip differs:\n got %#v\nwant %#v", got, m)
	}
	b2, err := got.Encode()
	if err != nil {
		t.Fatalf("re-Encode: %v", err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("re-encoding differs")
	}
	return b
}
