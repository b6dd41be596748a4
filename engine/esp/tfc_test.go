package esp

import (
	"bytes"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// TFC padding (RFC 4303 §2.7): the sender rounds the inner packet up to
// TFCGranule when the buffer allows; the receiver strips it by the inner IP
// length. Transport mode never pads.
func TestTFCPadding(t *testing.T) {
	for _, c := range []struct {
		name     string
		suite    dataplane.Suite
		mode     dataplane.Mode
		inner    []byte
		nh       uint8
		fullCap  bool // capacity head+n+tail, else just enough without TFC
		wantCT   int  // encrypted length (payload, TFC, padding, trailer)
		wantTail int
	}{
		{"v4 gcm", dataplane.SuiteAESGCM128, dataplane.Tunnel, ipv4(65), NextHeaderIPv4, true, 132, 0},
		{"v4 gcm exact granule", dataplane.SuiteAESGCM128, dataplane.Tunnel, ipv4(128), NextHeaderIPv4, true, 132, 0},
		{"v6 chacha", dataplane.SuiteChaCha20Poly1305, dataplane.Tunnel, ipv6(41), NextHeaderIPv6, true, 68, 0},
		{"v4 cbc", dataplane.SuiteAESCBC128HMACSHA1, dataplane.Tunnel, ipv4(20), NextHeaderIPv4, true, 80, 0},
		{"no room: no TFC", dataplane.SuiteAESGCM128, dataplane.Tunnel, ipv4(65), NextHeaderIPv4, false, 68, 0},
		{"transport: no TFC", dataplane.SuiteAESGCM128, dataplane.Transport, bytes.Repeat([]byte{1}, 65), 17, true, 68, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, in := pair(t, c.suite, func(cf *Config) { cf.Mode, cf.TFCPadding = c.mode, true })
			_, plain := pair(t, c.suite, func(cf *Config) { cf.Mode = c.mode })
			head, tail := out.Overhead()
			_, plainTail := plain.Overhead()
			if c.mode == dataplane.Tunnel && tail != plainTail+TFCGranule-1 {
				t.Fatalf("tail %d, want %d", tail, plainTail+TFCGranule-1)
			}
			n := len(c.inner)
			capacity := head + n + tail
			if !c.fullCap {
				capacity = head + n + plainTail
			}
			buf := make([]byte, head+n, capacity)
			copy(buf[head:], c.inner)
			seq, _ := out.NextSeq()
			pkt, err := out.SealInPlace(buf, n, c.nh, seq)
			if err != nil {
				t.Fatal(err)
			}
			if ct := len(pkt) - head - out.p.icvLen; ct != c.wantCT {
				t.Fatalf("encrypted part %d bytes, want %d", ct, c.wantCT)
			}
			got, nh, err := in.Open(pkt)
			if err != nil || nh != c.nh || !bytes.Equal(got, c.inner) {
				t.Fatalf("Open: %v nh %d, %d bytes, want %d", err, nh, len(got), n)
			}
		})
	}
}
