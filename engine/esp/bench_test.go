package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"strconv"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// Compare: go test -run x -bench . -benchmem -cpu 1 ./engine/esp/
// BenchmarkRawAEAD is the bare cipher on the same sizes; the ESP overhead
// is the ratio Seal/RawAEAD-seal and Open/RawAEAD-open.

var benchSizes = []int{64, 1400}

func BenchmarkSeal(b *testing.B) {
	for _, suite := range allSuites {
		for _, n := range benchSizes {
			b.Run(suite.String()+"/"+strconv.Itoa(n), func(b *testing.B) {
				out, _ := pair(b, suite, nil)
				head, tail := out.Overhead()
				buf := make([]byte, head+n, head+n+tail)
				copy(buf[head:], ipv4(n))
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					seq, err := out.NextSeq()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := out.SealInPlace(buf, n, NextHeaderIPv4, seq); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, suite := range allSuites {
		for _, n := range benchSizes {
			b.Run(suite.String()+"/"+strconv.Itoa(n), func(b *testing.B) {
				out, in := pair(b, suite, nil)
				pristine := seal(b, out, ipv4(n), NextHeaderIPv4)
				work := make([]byte, len(pristine))
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					copy(work, pristine)
					in.replay.top = 0 // the same packet again, through the full check
					clear(in.replay.ring)
					if _, _, err := in.Open(work); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// rawCipher is the bare transform of a suite: an AEAD, or AES-CBC then a
// truncated HMAC with reused state.
type rawCipher struct {
	aead     cipher.AEAD
	enc, dec cbcMode
	mac      interface {
		Reset()
		Write([]byte) (int, error)
		Sum([]byte) []byte
	}
	icv  int
	sum  []byte
	iv   []byte
	aadb []byte
}

func newRaw(b *testing.B, suite dataplane.Suite) *rawCipher {
	p, _ := suiteParams(suite)
	k := testKeys(suite)
	r := &rawCipher{icv: p.icvLen, iv: make([]byte, 16), aadb: make([]byte, 8), sum: make([]byte, 0, 64)}
	var err error
	switch {
	case p.chacha:
		r.aead, err = chacha20poly1305.New(k.Enc[:32])
	case p.aead:
		var blk cipher.Block
		if blk, err = aes.NewCipher(k.Enc[:len(k.Enc)-4]); err == nil {
			r.aead, err = cipher.NewGCM(blk)
		}
	default:
		var blk cipher.Block
		if blk, err = aes.NewCipher(k.Enc); err == nil {
			r.enc = cipher.NewCBCEncrypter(blk, r.iv).(cbcMode)
			r.dec = cipher.NewCBCDecrypter(blk, r.iv).(cbcMode)
			r.mac = hmac.New(p.newHash, k.Integ)
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// seal encrypts p (block aligned for CBC) in place and appends the tag.
func (r *rawCipher) seal(p []byte) []byte {
	if r.aead != nil {
		return r.aead.Seal(p[:0], r.iv[:12], p, r.aadb)
	}
	r.enc.SetIV(r.iv)
	r.enc.CryptBlocks(p, p)
	r.mac.Reset()
	r.mac.Write(p)
	return append(p, r.mac.Sum(r.sum[:0])[:r.icv]...)
}

func (r *rawCipher) open(c []byte) error {
	if r.aead != nil {
		_, err := r.aead.Open(c[:0], r.iv[:12], c, r.aadb)
		return err
	}
	ct := c[:len(c)-r.icv]
	r.mac.Reset()
	r.mac.Write(ct)
	if !hmac.Equal(r.mac.Sum(r.sum[:0])[:r.icv], c[len(ct):]) {
		return errICV
	}
	r.dec.SetIV(r.iv)
	r.dec.CryptBlocks(ct, ct)
	return nil
}

func BenchmarkRawAEAD(b *testing.B) {
	for _, suite := range allSuites {
		for _, n := range benchSizes {
			b.Run("seal/"+suite.String()+"/"+strconv.Itoa(n), func(b *testing.B) {
				r := newRaw(b, suite)
				n := n
				if r.aead == nil {
					n = (n + 15) / 16 * 16 // CBC needs whole blocks
				}
				buf := make([]byte, n, n+64)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					r.seal(buf[:n])
				}
			})
			b.Run("open/"+suite.String()+"/"+strconv.Itoa(n), func(b *testing.B) {
				r := newRaw(b, suite)
				n := n
				if r.aead == nil {
					n = (n + 15) / 16 * 16
				}
				pristine := r.seal(make([]byte, n, n+64))
				work := make([]byte, len(pristine))
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					copy(work, pristine)
					if err := r.open(work); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
