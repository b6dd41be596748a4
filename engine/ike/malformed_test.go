package ike

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// rawPayload builds one payload with a generic header; length < 0 = derived.
func rawPayload(next PayloadType, critical bool, length int, body []byte) []byte {
	flags := byte(0)
	if critical {
		flags = 0x80
	}
	if length < 0 {
		length = PayloadHeaderLen + len(body)
	}
	b := []byte{byte(next), flags, byte(length >> 8), byte(length)}
	return append(b, body...)
}

// rawMessage builds a message: header with the given version and first
// payload, then chain; Length is the real length unless lengthDelta moves it.
func rawMessage(version byte, first PayloadType, chain []byte, lengthDelta int) []byte {
	b := make([]byte, HeaderLen, HeaderLen+len(chain))
	binary.BigEndian.PutUint64(b[0:], 0x0102030405060708)
	b[16], b[17], b[18], b[19] = byte(first), version, byte(IKESAInit), byte(FlagInitiator)
	b = append(b, chain...)
	binary.BigEndian.PutUint32(b[24:], uint32(len(b)+lengthDelta))
	return b
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

var (
	nonce16 = seq(16, 0)
	netip6  = netip.MustParseAddr("2001:db8::1")
)

// A proposal body for SA tests: one ENCR transform with the given attributes.
func rawProposal(last byte, attrs []byte) []byte {
	tr := cat([]byte{0, 0, 0, byte(8 + len(attrs)), 1, 0, 0, 12}, attrs)
	p := cat([]byte{last, 0, 0, byte(8 + len(tr)), 1, 1, 0, 1}, tr)
	return p
}

func TestDecodeMalformed(t *testing.T) {
	n := func(body []byte) []byte { return rawPayload(PayloadNone, false, -1, body) }
	tests := []struct {
		name   string
		msg    []byte
		notify NotifyType // 0 = must decode
		data   []byte
	}{
		{"truncated header", rawMessage(0x20, PayloadNone, nil, 0)[:27], InvalidSyntax, nil},
		{"empty datagram", nil, InvalidSyntax, nil},
		{"major version 3", rawMessage(0x30, PayloadNone, nil, 0), InvalidMajorVersion, nil},
		{"IKEv1 header", rawMessage(0x10, PayloadNone, nil, 0), InvalidMajorVersion, nil},
		{"minor version ignored", rawMessage(0x2f, PayloadNone, nil, 0), 0, nil},
		{"Length beyond datagram", rawMessage(0x20, PayloadNonce, n(nonce16), 1), InvalidSyntax, nil},
		{"Length short of datagram", rawMessage(0x20, PayloadNonce, n(nonce16), -1), InvalidSyntax, nil},
		{"missing first payload", rawMessage(0x20, PayloadNonce, nil, 0), InvalidSyntax, nil},
		{"truncated payload header", rawMessage(0x20, PayloadNonce, []byte{0, 0, 0}, 0), InvalidSyntax, nil},
		{"zero-length payload header", rawMessage(0x20, PayloadNonce, rawPayload(PayloadNone, false, 0, nonce16), 0), InvalidSyntax, nil},
		{"payload length 3", rawMessage(0x20, PayloadNonce, rawPayload(PayloadNone, false, 3, nonce16), 0), InvalidSyntax, nil},
		{"payload length beyond message", rawMessage(0x20, PayloadNonce, rawPayload(PayloadNone, false, 21, nonce16), 0), InvalidSyntax, nil},
		{"chain claims another payload", rawMessage(0x20, PayloadNonce, rawPayload(PayloadNotify, false, -1, nonce16), 0), InvalidSyntax, nil},
		{"octets after last payload", rawMessage(0x20, PayloadNonce, cat(n(nonce16), []byte{0}), 0), InvalidSyntax, nil},
		{"critical unknown", rawMessage(0x20, 99, rawPayload(PayloadNone, true, -1, []byte{1}), 0), UnsupportedCriticalPayload, []byte{99}},
		{"critical unknown after known", rawMessage(0x20, PayloadNonce, cat(rawPayload(250, false, -1, nonce16), rawPayload(PayloadNone, true, -1, nil)), 0), UnsupportedCriticalPayload, []byte{250}},
		{"non-critical unknown skipped", rawMessage(0x20, 99, cat(rawPayload(PayloadNonce, false, -1, []byte{1}), n(nonce16)), 0), 0, nil},
		{"critical bit on known payload", rawMessage(0x20, PayloadNonce, rawPayload(PayloadNone, true, -1, nonce16), 0), 0, nil},
		{"SK not last", rawMessage(0x20, PayloadSK, cat(rawPayload(PayloadNonce, false, -1, seq(8, 0)), n(nonce16)), 0), InvalidSyntax, nil},
		{"SKF not last", rawMessage(0x20, PayloadSKF, cat(rawPayload(PayloadNonce, false, -1, []byte{0, 1, 0, 1}), n(nonce16)), 0), InvalidSyntax, nil},
		{"SKF number 0", rawMessage(0x20, PayloadSKF, n([]byte{0, 0, 0, 1, 9}), 0), InvalidSyntax, nil},
		{"SKF number above total", rawMessage(0x20, PayloadSKF, n([]byte{0, 3, 0, 2, 9}), 0), InvalidSyntax, nil},
		{"SKF short", rawMessage(0x20, PayloadSKF, n([]byte{0, 1, 0}), 0), InvalidSyntax, nil},
		{"SA empty", rawMessage(0x20, PayloadSA, n(nil), 0), InvalidSyntax, nil},
		{"SA bad Last Substruc", rawMessage(0x20, PayloadSA, n(rawProposal(1, nil)), 0), InvalidSyntax, nil},
		{"SA more proposals announced", rawMessage(0x20, PayloadSA, n(rawProposal(2, nil)), 0), InvalidSyntax, nil},
		{"SA octets after last proposal", rawMessage(0x20, PayloadSA, n(cat(rawProposal(0, nil), []byte{0})), 0), InvalidSyntax, nil},
		{"SA proposal length short", rawMessage(0x20, PayloadSA, n([]byte{0, 0, 0, 7, 1, 1, 0, 1}), 0), InvalidSyntax, nil},
		{"SA no transforms", rawMessage(0x20, PayloadSA, n([]byte{0, 0, 0, 8, 1, 1, 0, 0}), 0), InvalidSyntax, nil},
		{"SA SPI beyond proposal", rawMessage(0x20, PayloadSA, n([]byte{0, 0, 0, 8, 1, 1, 4, 1}), 0), InvalidSyntax, nil},
		{"SA transform count too high", rawMessage(0x20, PayloadSA, n(func() []byte { p := rawProposal(0, nil); p[7] = 2; return p }()), 0), InvalidSyntax, nil},
		{"SA transform count too low", rawMessage(0x20, PayloadSA, n(func() []byte {
			p := rawProposal(0, nil)
			p = append(p, 0, 0, 0, 8, 2, 0, 0, 5)
			p[3] += 8
			p[8] = 3
			return p
		}()), 0), InvalidSyntax, nil},
		{"SA Key Length as TLV", rawMessage(0x20, PayloadSA, n(rawProposal(0, []byte{0, 14, 0, 0})), 0), InvalidSyntax, nil},
		{"SA two Key Lengths", rawMessage(0x20, PayloadSA, n(rawProposal(0, []byte{0x80, 14, 0, 128, 0x80, 14, 1, 0})), 0), InvalidSyntax, nil},
		{"SA Key Length 0", rawMessage(0x20, PayloadSA, n(rawProposal(0, []byte{0x80, 14, 0, 0})), 0), InvalidSyntax, nil},
		{"SA truncated attribute", rawMessage(0x20, PayloadSA, n(rawProposal(0, []byte{0x80, 14})), 0), InvalidSyntax, nil},
		{"SA TLV attribute beyond transform", rawMessage(0x20, PayloadSA, n(rawProposal(0, []byte{0, 20, 0, 9})), 0), InvalidSyntax, nil},
		{"SA only unknown attributes", rawMessage(0x20, PayloadSA, n(rawProposal(0, []byte{0x80, 20, 0, 1})), 0), NoProposalChosen, nil},
		{"KE short", rawMessage(0x20, PayloadKE, n([]byte{0, 14, 0}), 0), InvalidSyntax, nil},
		{"nonce 15 octets", rawMessage(0x20, PayloadNonce, n(seq(15, 0)), 0), InvalidSyntax, nil},
		{"nonce 257 octets", rawMessage(0x20, PayloadNonce, n(seq(257, 0)), 0), InvalidSyntax, nil},
		{"ID short", rawMessage(0x20, PayloadIDi, n([]byte{2, 0, 0}), 0), InvalidSyntax, nil},
		{"ID_IPV4_ADDR of 5 octets", rawMessage(0x20, PayloadIDi, n([]byte{1, 0, 0, 0, 1, 2, 3, 4, 5}), 0), InvalidSyntax, nil},
		{"ID_IPV6_ADDR of 4 octets", rawMessage(0x20, PayloadIDr, n([]byte{5, 0, 0, 0, 1, 2, 3, 4}), 0), InvalidSyntax, nil},
		{"CERT empty", rawMessage(0x20, PayloadCERT, n(nil), 0), InvalidSyntax, nil},
		{"CERTREQ empty", rawMessage(0x20, PayloadCERTREQ, n(nil), 0), InvalidSyntax, nil},
		{"AUTH short", rawMessage(0x20, PayloadAUTH, n([]byte{2}), 0), InvalidSyntax, nil},
		{"Notify short", rawMessage(0x20, PayloadNotify, n([]byte{0, 0, 0x40}), 0), InvalidSyntax, nil},
		{"Notify SPI beyond payload", rawMessage(0x20, PayloadNotify, n([]byte{3, 4, 0x40, 0x09, 1, 2}), 0), InvalidSyntax, nil},
		{"Delete IKE with SPI size", rawMessage(0x20, PayloadDelete, n([]byte{1, 8, 0, 0}), 0), InvalidSyntax, nil},
		{"Delete ESP SPI size 8", rawMessage(0x20, PayloadDelete, n([]byte{3, 8, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8}), 0), InvalidSyntax, nil},
		{"Delete ESP count mismatch", rawMessage(0x20, PayloadDelete, n([]byte{3, 4, 0, 2, 1, 2, 3, 4}), 0), InvalidSyntax, nil},
		{"Delete ESP no SPIs", rawMessage(0x20, PayloadDelete, n([]byte{3, 4, 0, 0}), 0), InvalidSyntax, nil},
		{"Delete unknown protocol", rawMessage(0x20, PayloadDelete, n([]byte{9, 4, 0, 1, 1, 2, 3, 4}), 0), InvalidSyntax, nil},
		{"TS zero selectors", rawMessage(0x20, PayloadTSi, n([]byte{0, 0, 0, 0}), 0), InvalidSyntax, nil},
		{"TS count too high", rawMessage(0x20, PayloadTSi, n(cat([]byte{2, 0, 0, 0}, []byte{7, 0, 0, 16, 0, 0, 255, 255, 0, 0, 0, 0, 255, 255, 255, 255})), 0), InvalidSyntax, nil},
		{"TS count too low", rawMessage(0x20, PayloadTSi, n(cat([]byte{1, 0, 0, 0}, []byte{7, 0, 0, 16, 0, 0, 255, 255, 0, 0, 0, 0, 255, 255, 255, 255}, []byte{7, 0, 0, 16, 0, 0, 255, 255, 0, 0, 0, 0, 255, 255, 255, 255})), 0), InvalidSyntax, nil},
		{"TS IPv4 selector length 40", rawMessage(0x20, PayloadTSr, n(cat([]byte{1, 0, 0, 0}, []byte{7, 0, 0, 40}, seq(36, 0))), 0), InvalidSyntax, nil},
		{"TS selector length beyond", rawMessage(0x20, PayloadTSr, n(cat([]byte{1, 0, 0, 0}, []byte{8, 0, 0, 40}, seq(16, 0))), 0), InvalidSyntax, nil},
		{"TS_SECLABEL refused", rawMessage(0x20, PayloadTSr, n(cat([]byte{1, 0, 0, 0}, []byte{10, 0, 0, 8, 1, 2, 3, 0})), 0), TSUnacceptable, nil},
		{"CP short", rawMessage(0x20, PayloadCP, n([]byte{1, 0, 0}), 0), InvalidSyntax, nil},
		{"CP attribute beyond payload", rawMessage(0x20, PayloadCP, n([]byte{1, 0, 0, 0, 0, 1, 0, 4, 10}), 0), InvalidSyntax, nil},
		{"CP truncated attribute header", rawMessage(0x20, PayloadCP, n([]byte{1, 0, 0, 0, 0, 1}), 0), InvalidSyntax, nil},
		{"CP IPv4 address of 3 octets", rawMessage(0x20, PayloadCP, n([]byte{2, 0, 0, 0, 0, 1, 0, 3, 10, 0, 0}), 0), InvalidSyntax, nil},
		{"CP IPv6 address without prefix", rawMessage(0x20, PayloadCP, n(cat([]byte{2, 0, 0, 0, 0, 8, 0, 16}, seq(16, 0))), 0), InvalidSyntax, nil},
		{"CP P-CSCF IPv6 of 4 octets", rawMessage(0x20, PayloadCP, n([]byte{2, 0, 0, 0, 0, 21, 0, 4, 1, 2, 3, 4}), 0), InvalidSyntax, nil},
		{"CP R bit ignored", rawMessage(0x20, PayloadCP, n([]byte{1, 0, 0, 0, 0x80, 1, 0, 0}), 0), 0, nil},
		{"EAP short", rawMessage(0x20, PayloadEAP, n([]byte{1, 2, 0}), 0), InvalidSyntax, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(tt.msg)
			if tt.notify == 0 {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				b, err := m.Encode()
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				if _, err := Decode(b); err != nil {
					t.Fatalf("Decode re-encoded: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *ike.Error", err, err)
			}
			if e.Notify != tt.notify || !bytes.Equal(e.Data, tt.data) || e.Reason == "" {
				t.Fatalf("err = %v data %x, want %v data %x", e, e.Data, tt.notify, tt.data)
			}
			if m != nil {
				t.Fatal("message returned with error")
			}
		})
	}
}

func TestDecodeUnknownAttributeDropsProposal(t *testing.T) {
	sa := cat(rawProposal(2, []byte{0x80, 20, 0, 1}), rawProposal(0, []byte{0x80, 14, 0, 128}))
	sa[len(rawProposal(2, nil))+4+4] = 2 // second proposal number
	m, err := Decode(rawMessage(0x20, PayloadSA, rawPayload(PayloadNone, false, -1, sa), 0))
	if err != nil {
		t.Fatal(err)
	}
	got := m.Payloads[0].(*SA).Proposals
	if len(got) != 1 || got[0].Transforms[0].KeyLength != 128 {
		t.Fatalf("proposals %+v", got)
	}
}

func TestDecodePayloadsRejectsNestedSK(t *testing.T) {
	for _, pt := range []PayloadType{PayloadSK, PayloadSKF} {
		_, err := DecodePayloads(pt, rawPayload(PayloadNone, false, -1, []byte{0, 1, 0, 1}))
		var e *Error
		if !errors.As(err, &e) || e.Notify != InvalidSyntax {
			t.Errorf("%v: err = %v", pt, err)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		ps   []Payload
	}{
		{"nil payload", []Payload{nil}},
		{"SK not last", []Payload{&Encrypted{}, &Nonce{Data: nonce16}}},
		{"short nonce", []Payload{&Nonce{Data: seq(8, 0)}}},
		{"empty SA", []Payload{&SA{}}},
		{"proposal without transforms", []Payload{&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoIKE}}}}},
		{"IKE delete with SPIs", []Payload{&Delete{Protocol: ProtoIKE, SPIs: []uint32{1}}}},
		{"ESP delete without SPIs", []Payload{&Delete{Protocol: ProtoESP}}},
		{"empty TS", []Payload{&TrafficSelectors{}}},
		{"TS mixed families", []Payload{&TrafficSelectors{Selectors: []TrafficSelector{{Start: addrInit, End: netip6}}}}},
		{"TS invalid address", []Payload{&TrafficSelectors{Selectors: []TrafficSelector{{}}}}},
		{"CP bad length", []Payload{&Config{Attributes: []CPAttribute{{Type: CPInternalIP4Address, Value: []byte{1}}}}}},
		{"CP type above 15 bits", []Payload{&Config{Attributes: []CPAttribute{{Type: 0x8001}}}}},
		{"SKF number 0", []Payload{&EncryptedFragment{Total: 1}}},
		{"Unknown of a known type", []Payload{&Unknown{PayloadType: PayloadSA}}},
		{"oversized payload", []Payload{&VendorID{Data: make([]byte, 70000)}}},
		{"EAP short", []Payload{&EAP{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Message{Header: Header{SPIi: 1}, Payloads: tt.ps}
			_, err := m.Encode()
			var e *EncodeError
			if !errors.As(err, &e) || e.Reason == "" {
				t.Fatalf("err = %v", err)
			}
		})
	}
	if _, _, err := EncodePayloads([]Payload{&Encrypted{}}); err == nil {
		t.Fatal("SK inside an inner chain encoded")
	}
}
