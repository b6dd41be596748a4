package esp

import (
	"bytes"
	"testing"
)

func TestClassify(t *testing.T) {
	ike := bytes.Repeat([]byte{0x21}, 28)
	esp := append([]byte{0, 0, 0x10, 0, 0, 0, 0, 1}, make([]byte, 40)...)
	for _, c := range []struct {
		name string
		in   []byte
		kind Kind
		rest []byte
	}{
		{"keepalive", []byte{0xff}, KindKeepalive, nil},
		{"keepalive built", AppendKeepalive(nil), KindKeepalive, nil},
		{"ike", AppendIKE(nil, ike), KindIKE, ike},
		{"ike marker in place", append(PutNonESPMarker([]byte{9, 9, 9, 9}), ike...), KindIKE, ike},
		{"esp", esp, KindESP, esp},
		{"esp minimum", esp[:8], KindESP, esp[:8]},
		{"empty", nil, KindInvalid, nil},
		{"single zero", []byte{0}, KindInvalid, nil},
		{"two bytes ff", []byte{0xff, 0xff}, KindInvalid, nil},
		{"marker only", []byte{0, 0, 0, 0}, KindInvalid, nil},
		{"esp too short", esp[:7], KindInvalid, nil},
		{"reserved spi", []byte{0, 0, 0, 0xff, 0, 0, 0, 1}, KindInvalid, nil},
	} {
		kind, rest := Classify(c.in)
		if kind != c.kind || !bytes.Equal(rest, c.rest) {
			t.Errorf("%s: %s %x, want %s %x", c.name, kind, rest, c.kind, c.rest)
		}
	}
	for k, s := range map[Kind]string{KindInvalid: "invalid", KindIKE: "ike", KindKeepalive: "nat_keepalive", KindESP: "esp", 9: "invalid"} {
		if k.String() != s {
			t.Errorf("%d: %q", k, k.String())
		}
	}
	if spi, ok := PeekSPI(esp); !ok || spi != 0x1000 {
		t.Errorf("PeekSPI = %#x %t", spi, ok)
	}
	if _, ok := PeekSPI(esp[:7]); ok {
		t.Error("PeekSPI on 7 bytes")
	}
}
