package esp

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// espVector is one whole-packet known answer, normalised from either file.
type espVector struct {
	name    string
	suite   dataplane.Suite
	mode    dataplane.Mode
	key     []byte // key ‖ salt
	spi     uint32
	seq     uint64
	esn     bool
	iv      []byte
	plain   []byte // inner packet, without trailer
	nh      uint8
	padLen  int
	aad     []byte
	packet  []byte
	keyBits int
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func be(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

func loadGCMVectors(t *testing.T) []espVector {
	t.Helper()
	raw, err := os.ReadFile("testdata/aes_gcm_esp_rfc4106.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []struct {
			Page      string `json:"draft_page"`
			Key       string `json:"key"`
			KeyBits   int    `json:"key_bits"`
			Salt      string `json:"salt"`
			IV        string `json:"iv"`
			SPI       string `json:"spi"`
			AAD       string `json:"aad"`
			ESN       bool   `json:"esn"`
			SeqHi     string `json:"seq_hi"`
			SeqLo     string `json:"seq_lo"`
			Seq32     string `json:"seq32"`
			Plain     string `json:"plaintext_incl_trailer"`
			PadLength int    `json:"pad_length"`
			NH        uint8  `json:"next_header"`
			Packet    string `json:"esp_packet"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	var out []espVector
	for _, v := range f.Vectors {
		ev := espVector{
			name:    "rfc4106/page" + v.Page,
			mode:    dataplane.Transport, // the draft's packets carry next header 1
			key:     append(unhex(t, v.Key), unhex(t, v.Salt)...),
			spi:     uint32(be(unhex(t, v.SPI))),
			esn:     v.ESN,
			iv:      unhex(t, v.IV),
			nh:      v.NH,
			padLen:  v.PadLength,
			aad:     unhex(t, v.AAD),
			packet:  unhex(t, v.Packet),
			keyBits: v.KeyBits,
		}
		if v.ESN {
			ev.seq = be(unhex(t, v.SeqHi))<<32 | be(unhex(t, v.SeqLo))
		} else {
			ev.seq = be(unhex(t, v.Seq32))
		}
		pt := unhex(t, v.Plain)
		ev.plain = pt[:len(pt)-2-v.PadLength]
		switch v.KeyBits {
		case 256:
			ev.suite = dataplane.SuiteAESGCM256
		default: // 128, and 192 through newSA
			ev.suite = dataplane.SuiteAESGCM128
		}
		out = append(out, ev)
	}
	if len(out) != 8 {
		t.Fatalf("want 8 GCM vectors, have %d", len(out))
	}
	return out
}

func loadChaChaVectors(t *testing.T) []espVector {
	t.Helper()
	raw, err := os.ReadFile("testdata/chacha20poly1305_rfc7634.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []struct {
			Name      string `json:"name"`
			Keymat    string `json:"keymat_36_bytes"`
			SPI       string `json:"spi"`
			Seq       string `json:"seq"`
			IV        string `json:"iv"`
			AAD       string `json:"aad_spi_seq"`
			Breakdown struct {
				Inner  string `json:"inner_ipv4_packet"`
				PadLen string `json:"pad_length"`
			} `json:"plaintext_breakdown"`
			Packet string `json:"esp_packet"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	var out []espVector
	for _, v := range f.Vectors {
		if v.Packet == "" {
			continue // Appendix B is an IKE message, not ESP
		}
		out = append(out, espVector{
			name:   v.Name,
			suite:  dataplane.SuiteChaCha20Poly1305,
			mode:   dataplane.Tunnel,
			key:    unhex(t, v.Keymat),
			spi:    uint32(be(unhex(t, v.SPI))),
			seq:    be(unhex(t, v.Seq)),
			iv:     unhex(t, v.IV),
			plain:  unhex(t, v.Breakdown.Inner),
			nh:     NextHeaderIPv4,
			padLen: int(be(unhex(t, v.Breakdown.PadLen))),
			aad:    unhex(t, v.AAD),
			packet: unhex(t, v.Packet),
		})
	}
	if len(out) != 1 {
		t.Fatalf("want 1 ESP ChaCha20-Poly1305 vector, have %d", len(out))
	}
	return out
}

// vectorSA builds the SA of a vector with its replay state placed so that
// ESN inference yields the vector's high half.
func vectorSA(t *testing.T, v espVector) *SA {
	t.Helper()
	p, _ := suiteParams(v.suite)
	s, err := newSA(Config{SPI: v.spi, Suite: v.suite, Keys: dataplane.Keys{Enc: v.key}, ESN: v.esn, Mode: v.mode, ReplayWindow: 64}, p)
	if err != nil {
		t.Fatal(err)
	}
	s.replay.top = v.seq - 1
	s.seq.Store(v.seq)
	return s
}

func TestKnownAnswers(t *testing.T) {
	vs := append(loadGCMVectors(t), loadChaChaVectors(t)...)
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			s := vectorSA(t, v)
			// AAD as the vector states it.
			var sc scratch
			if got := s.aad(&sc, v.packet, v.seq); !bytes.Equal(got, v.aad) {
				t.Errorf("aad = %x, want %x", got, v.aad)
			}
			// Open.
			pkt := bytes.Clone(v.packet)
			inner, nh, err := s.Open(pkt)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if nh != v.nh || !bytes.Equal(inner, v.plain) {
				t.Fatalf("Open = nh %d %x, want nh %d %x", nh, inner, v.nh, v.plain)
			}
			if pad := int(pkt[len(pkt)-s.p.icvLen-2]); pad != v.padLen {
				t.Errorf("decrypted pad length %d, want %d", pad, v.padLen)
			}
			// Seal with the vector's IV gives the same bytes.
			head, tail := s.Overhead()
			buf := make([]byte, head+len(v.plain), head+len(v.plain)+tail)
			copy(buf[head:], v.plain)
			out, derr := s.seal(buf, len(v.plain), v.nh, v.seq, v.iv)
			if derr != nil {
				t.Fatalf("seal: %v", derr)
			}
			if !bytes.Equal(out, v.packet) {
				t.Fatalf("seal =\n%x\nwant\n%x", out, v.packet)
			}
			// A flipped bit anywhere fails: SPI and sequence number through
			// the AAD, the rest through the tag.
			for _, i := range []int{0, 5, 9, head + 1, len(v.packet) - 1} {
				s := vectorSA(t, v)
				bad := bytes.Clone(v.packet)
				bad[i] ^= 0x10
				if _, _, err := s.Open(bad); err == nil {
					t.Errorf("byte %d flipped: Open succeeded", i)
				}
			}
		})
	}
}
