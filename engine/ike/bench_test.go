package ike

import "testing"

func BenchmarkDecodeIKESAInit(b *testing.B) {
	msg, err := ikeSAInitRequest().Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeIKESAInit(b *testing.B) {
	m := ikeSAInitRequest()
	buf, err := m.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = m.AppendEncode(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// IKE_AUTH: the outer message with its SK payload plus the decrypted inner chain.
func BenchmarkDecodeIKEAuth(b *testing.B) {
	msg, err := ikeAuthRequest(b).Encode()
	if err != nil {
		b.Fatal(err)
	}
	first, inner, err := EncodePayloads(ikeAuthInner())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg) + len(inner)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := DecodePayloads(first, inner); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeIKEAuth(b *testing.B) {
	ps := ikeAuthInner()
	m := ikeAuthRequest(b)
	buf, err := m.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := EncodePayloads(ps); err != nil {
			b.Fatal(err)
		}
		if buf, err = m.AppendEncode(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
