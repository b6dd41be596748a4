package esp

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
)

func TestRoundTrip(t *testing.T) {
	type tc struct {
		name  string
		mode  dataplane.Mode
		esn   bool
		tfc   bool
		inner []byte
		nh    uint8
	}
	var cases []tc
	for _, mode := range []dataplane.Mode{dataplane.Tunnel, dataplane.Transport} {
		for _, esn := range []bool{false, true} {
			for _, tfc := range []bool{false, true} {
				for _, n := range []int{40, 41, 42, 43, 64, 100, 1400} {
					c := tc{mode: mode, esn: esn, tfc: tfc, inner: ipv4(max(n, 20)), nh: NextHeaderIPv4}
					if n%2 == 1 {
						c.inner, c.nh = ipv6(n), NextHeaderIPv6
					}
					if mode == dataplane.Transport {
						c.nh = 17 // UDP payload
						c.inner = bytes.Repeat([]byte{0xab}, n)
					}
					c.name = fmt.Sprintf("%s/esn=%t/tfc=%t/%d", mode, esn, tfc, n)
					cases = append(cases, c)
				}
			}
		}
	}
	for _, suite := range allSuites {
		for _, c := range cases {
			t.Run(suite.String()+"/"+c.name, func(t *testing.T) {
				out, in := pair(t, suite, func(cf *Config) { cf.Mode, cf.ESN, cf.TFCPadding = c.mode, c.esn, c.tfc })
				head, tail := out.Overhead()
				for range 3 {
					pkt := seal(t, out, c.inner, c.nh)
					if len(pkt) > head+len(c.inner)+tail {
						t.Fatalf("packet %d bytes exceeds head %d + inner %d + tail %d", len(pkt), head, len(c.inner), tail)
					}
					ct := len(pkt) - head - out.p.icvLen
					if ct%out.p.align != 0 {
						t.Fatalf("ciphertext %d bytes not aligned to %d", ct, out.p.align)
					}
					padded := c.tfc && c.mode == dataplane.Tunnel
					if padded && ct < len(c.inner)/TFCGranule*TFCGranule {
						t.Fatalf("TFC: ciphertext %d bytes, inner %d", ct, len(c.inner))
					}
					if !padded && ct >= len(c.inner)+2+out.p.align {
						t.Fatalf("no TFC: ciphertext %d bytes for inner %d", ct, len(c.inner))
					}
					got, nh, err := in.Open(pkt)
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					if nh != c.nh || !bytes.Equal(got, c.inner) {
						t.Fatalf("Open = nh %d, %d bytes; want nh %d, %d bytes", nh, len(got), c.nh, len(c.inner))
					}
				}
				if st := in.Stats(); st.Packets != 3 || st.Bytes != uint64(3*len(c.inner)) || st.Drops.Total() != 0 {
					t.Errorf("inbound stats %+v", st)
				}
				if st := out.Stats(); st.Packets != 3 || st.Bytes != uint64(3*len(c.inner)) || st.Seq != 3 {
					t.Errorf("outbound stats %+v", st)
				}
			})
		}
	}
}

func TestNewSARejects(t *testing.T) {
	good := Config{SPI: 0x1000, Suite: dataplane.SuiteAESCBC128HMACSHA256, Keys: testKeys(dataplane.SuiteAESCBC128HMACSHA256), Mode: dataplane.Tunnel}
	for _, c := range []struct {
		field string
		mod   func(*Config)
	}{
		{"suite", func(c *Config) { c.Suite = 99 }},
		{"keys.enc", func(c *Config) { c.Keys.Enc = c.Keys.Enc[:15] }},
		{"keys.enc", func(c *Config) { c.Suite = dataplane.SuiteAESGCM128 }},
		{"keys.integ", func(c *Config) { c.Keys.Integ = nil }},
		{"mode", func(c *Config) { c.Mode = 0 }},
		{"replay_window", func(c *Config) { c.ReplayWindow = -1 }},
		{"replay_window", func(c *Config) { c.ReplayWindow = MaxReplayWindow + 1 }},
		{"spi", func(c *Config) { c.SPI = 0 }},
		{"spi", func(c *Config) { c.SPI = 255 }},
	} {
		cf := good
		cf.Keys = testKeys(good.Suite)
		c.mod(&cf)
		_, err := NewSA(cf)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("%s: err = %v, want ConfigError on %s", c.field, err, c.field)
		}
	}
	if _, err := NewSA(good); err != nil {
		t.Fatal(err)
	}
}

func TestKeysCopiedAndRedacted(t *testing.T) {
	for _, suite := range allSuites {
		c := Config{SPI: 0x1000, Suite: suite, Keys: testKeys(suite), Mode: dataplane.Tunnel}
		out, err := NewSA(c)
		if err != nil {
			t.Fatal(err)
		}
		in, _ := NewSA(Config{SPI: 0x1000, Suite: suite, Keys: testKeys(suite), Mode: dataplane.Tunnel})
		c.Keys.Zero() // the caller's copy; the SA must not share it
		pkt := seal(t, out, ipv4(60), NextHeaderIPv4)
		if _, _, err := in.Open(pkt); err != nil {
			t.Fatalf("%s: Open after the caller zeroed its keys: %v", suite, err)
		}
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			str := fmt.Sprintf(f, out)
			if !strings.Contains(str, "[redacted]") || strings.Contains(str, "0x1,") {
				t.Errorf("%s: %s prints %q", suite, f, str)
			}
		}
		in.Zero()
		if _, _, err := in.Open(pkt); !errors.Is(err, &DropError{Reason: DropZeroed}) {
			t.Errorf("%s: Open after Zero: %v", suite, err)
		}
		if _, err := sealErr(in, ipv4(60), NextHeaderIPv4); !errors.Is(err, &DropError{Reason: DropZeroed}) {
			t.Errorf("%s: Seal after Zero: %v", suite, err)
		}
	}
}

// An SA dropped without Zero has its keys wiped by the garbage collector.
func TestKeysWipedWhenDropped(t *testing.T) {
	s, err := NewSA(Config{SPI: 0x1000, Suite: dataplane.SuiteAESCBC128HMACSHA256, Keys: testKeys(dataplane.SuiteAESCBC128HMACSHA256), Mode: dataplane.Tunnel})
	if err != nil {
		t.Fatal(err)
	}
	ks := s.ks.Load()
	if isZero(ks.innerState) {
		t.Fatal("HMAC state empty before drop")
	}
	g, err := NewSA(Config{SPI: 0x1000, Suite: dataplane.SuiteAESGCM128, Keys: testKeys(dataplane.SuiteAESGCM128), Mode: dataplane.Tunnel})
	if err != nil {
		t.Fatal(err)
	}
	gks := g.ks.Load()
	s, g = nil, nil
	_, _ = s, g
	deadline := time.Now().Add(5 * time.Second)
	for !isZero(ks.innerState) || !isZero(ks.outerState) || !isZero(gks.salt[:]) {
		if time.Now().After(deadline) {
			t.Fatal("keys not wiped after the SA became unreachable")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
