package ike

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// Native fuzz targets: decode → encode → decode must give the same value, the
// re-encoding must be stable, and errors must be typed. Seed corpora live in
// testdata/fuzz/<Name>/; crashers found there stay as regression cases.

func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Reason == "" || e.Notify == 0 {
		t.Fatalf("decode error %v (%T) is not a *ike.Error with a notify and reason", err, err)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range []*Message{ikeSAInitRequest(), ikeSAInitResponse(), ikeAuthRequest(f)} {
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		b, err := m.Encode()
		if err != nil {
			t.Fatalf("Encode of a decoded message: %v", err)
		}
		m2, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode of re-encoded message: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\n%#v\n%#v", m, m2)
		}
		b2, err := m2.Encode()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding not stable: %v", err)
		}
		if _, err := EncryptedOffset(b); err == nil {
			if last := m.Payloads[len(m.Payloads)-1].Type(); last != PayloadSK && last != PayloadSKF {
				t.Fatalf("EncryptedOffset found SK in a message ending with %v", last)
			}
		}
	})
}

// fuzzPayload decodes body as one payload of type pt and checks the round trip.
func fuzzPayload(t *testing.T, pt PayloadType, body []byte) {
	if len(body) > maxPayloadLen-PayloadHeaderLen {
		return
	}
	chain := binary.BigEndian.AppendUint16([]byte{0, 0}, uint16(PayloadHeaderLen+len(body)))
	chain = append(chain, body...)
	ps, err := DecodePayloads(pt, chain)
	if err != nil {
		checkDecodeError(t, err)
		return
	}
	first, b, err := EncodePayloads(ps)
	if err != nil {
		t.Fatalf("Encode of decoded %v: %v", pt, err)
	}
	if first != pt {
		t.Fatalf("first = %v, want %v", first, pt)
	}
	ps2, err := DecodePayloads(first, b)
	if err != nil {
		t.Fatalf("Decode of re-encoded %v: %v", pt, err)
	}
	if !reflect.DeepEqual(ps, ps2) {
		t.Fatalf("%v round trip differs:\n%#v\n%#v", pt, ps[0], ps2[0])
	}
}

// seedBodies adds the bodies of the given payloads as seeds (kind selects the
// payload type in targets covering several).
func seedBodies(f *testing.F, withKind bool, kinds []PayloadType, ps ...Payload) {
	for _, p := range ps {
		b, err := p.appendBody(nil)
		if err != nil {
			f.Fatal(err)
		}
		if !withKind {
			f.Add(b)
			continue
		}
		for i, k := range kinds {
			if k == p.Type() {
				f.Add(byte(i), b)
			}
		}
	}
}

func FuzzSA(f *testing.F) {
	seedBodies(f, false, nil, ikeSAInitRequest().Payloads[0], ikeAuthInner()[7])
	f.Fuzz(func(t *testing.T, body []byte) { fuzzPayload(t, PayloadSA, body) })
}

func FuzzTrafficSelectors(f *testing.F) {
	seedBodies(f, false, nil, ikeAuthInner()[8], ikeAuthInner()[9])
	f.Fuzz(func(t *testing.T, body []byte) { fuzzPayload(t, PayloadTSi, body) })
}

func FuzzConfig(f *testing.F) {
	seedBodies(f, false, nil, ikeAuthInner()[4], &Config{CFGType: CFGReply, Attributes: []CPAttribute{
		CPAddr(CPInternalIP4Address, addrInit), CPAddr(CPPCSCFIP6Address, netip6),
		CPPrefix(CPInternalIP6Address, netip.PrefixFrom(netip6, 64)),
	}})
	f.Fuzz(func(t *testing.T, body []byte) { fuzzPayload(t, PayloadCP, body) })
}

var notifyKinds = []PayloadType{PayloadNotify, PayloadDelete}

func FuzzNotifyDelete(f *testing.F) {
	seedBodies(f, true, notifyKinds,
		&Notify{Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, NotifyType: RekeySA},
		NotifyHashAlgorithms(HashSHA256, HashSHA512),
		&Delete{Protocol: ProtoESP, SPIs: []uint32{1, 2}}, &Delete{Protocol: ProtoIKE})
	f.Fuzz(func(t *testing.T, kind byte, body []byte) {
		fuzzPayload(t, notifyKinds[int(kind)%len(notifyKinds)], body)
	})
}

// Payloads with a small fixed header and opaque data.
var simpleKinds = []PayloadType{PayloadKE, PayloadIDi, PayloadIDr, PayloadCERT, PayloadCERTREQ,
	PayloadAUTH, PayloadNonce, PayloadVendorID, PayloadEAP, PayloadSK, PayloadSKF}

func FuzzSimplePayloads(f *testing.F) {
	seedBodies(f, true, simpleKinds,
		&KE{Group: GroupECP256, Data: seq(64, 0)}, IdentificationFromAddr(netip6, false),
		&Identification{Responder: true, IDType: IDFQDN, Data: []byte("gw")},
		&Cert{Encoding: CertX509Signature, Data: seq(10, 0)}, &CertReq{Encoding: CertX509Signature, Data: seq(20, 0)},
		&Auth{Method: AuthSharedKeyMIC, Data: seq(32, 0)}, &Nonce{Data: seq(32, 0)}, &VendorID{Data: []byte("v")},
		&EAP{Message: []byte{1, 1, 0, 5, 1}}, &Encrypted{Body: seq(16, 0)},
		&EncryptedFragment{Number: 1, Total: 2, Body: seq(16, 0)})
	f.Fuzz(func(t *testing.T, kind byte, body []byte) {
		pt := simpleKinds[int(kind)%len(simpleKinds)]
		if pt == PayloadSK || pt == PayloadSKF {
			// Outer-only payloads: go through a message.
			if len(body) > maxPayloadLen-PayloadHeaderLen {
				return
			}
			msg := rawMessage(0x20, pt, append(binary.BigEndian.AppendUint16([]byte{0, 0}, uint16(PayloadHeaderLen+len(body))), body...), 0)
			m, err := Decode(msg)
			if err != nil {
				checkDecodeError(t, err)
				return
			}
			b, err := m.Encode()
			if err != nil || !bytes.Equal(b, msg) {
				t.Fatalf("%v re-encoding differs: %v", pt, err)
			}
			return
		}
		fuzzPayload(t, pt, body)
	})
}

// FuzzReassemble feeds arbitrary fragment sequences, then checks that a split
// message reassembles in a fuzz-chosen order.
func FuzzReassemble(f *testing.F) {
	f.Add([]byte{1, 3, 2, 0xaa, 0xbb, 3, 3, 1, 0xcc, 2, 3, 0}, uint16(100), uint64(7))
	f.Add([]byte{1, 2, 1, 0, 1, 4, 1, 0}, uint16(45), uint64(0))
	f.Fuzz(func(t *testing.T, ops []byte, mtu uint16, order uint64) {
		// Part 1: ops are (number, total, length, data...) records.
		r := NewReassembler(8, 64)
		for len(ops) >= 3 {
			n, total, l := ops[0], ops[1], int(ops[2])
			ops = ops[3:]
			l = min(l, len(ops))
			f := Fragment{First: PayloadNotify, Number: uint16(n), Total: uint16(total), Data: ops[:l]}
			ops = ops[l:]
			_, inner, done, err := r.Add(f)
			if err != nil {
				var fe *FragmentError
				if !errors.As(err, &fe) || fe.Reason == "" {
					t.Fatalf("error %T %v", err, err)
				}
				continue
			}
			got, tot := r.Pending()
			if done && (len(inner) > 64 || got != 0) || !done && (got > tot || tot > 8) {
				t.Fatalf("state: done %v inner %d pending %d/%d", done, len(inner), got, tot)
			}
		}
		// Part 2: split the ops tail as a message and reassemble it.
		msg := ops
		l := FragmentLayout{MaxDatagram: int(mtu), IVLen: 8, ICVLen: 16}
		fs, err := SplitFragments(PayloadIDi, msg, l)
		if err != nil || len(fs) > 256 {
			return
		}
		max, _ := l.MaxPlaintext()
		r = NewReassembler(len(fs), len(msg))
		for i := range fs {
			j := i + int(order%uint64(len(fs)-i))
			fs[i], fs[j] = fs[j], fs[i]
			if len(fs[i].Data) > max {
				t.Fatalf("fragment of %d > %d", len(fs[i].Data), max)
			}
			first, inner, done, err := r.Add(fs[i])
			if err != nil {
				t.Fatal(err)
			}
			if done != (i == len(fs)-1) {
				t.Fatalf("done %v at %d of %d", done, i, len(fs))
			}
			if done && (first != PayloadIDi || !bytes.Equal(inner, msg)) {
				t.Fatal("reassembled message differs")
			}
		}
	})
}
