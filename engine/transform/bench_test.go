package transform

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/mifsec/mifsec/engine/ike"
)

// Benchmarks: SK protect/unprotect per cipher at 64 and 1400 bytes of inner
// payloads, beside the raw primitive on the same encrypted length (AEAD
// seal/open, or AES-CBC plus HMAC), so the overhead ratio reads off
// directly. Run:
//
//	go test -run x -bench . -benchmem -cpu 1 ./engine/transform/

var benchSizes = []int{64, 1400}

func BenchmarkSK(b *testing.B) {
	for _, cc := range cipherCases {
		for _, n := range benchSizes {
			c := newTestCipher(b, cc.suite)
			hdr := testHeader(c, n, false, 0)
			inner := testKey(n, 1)
			buf := make([]byte, 0, len(hdr)+c.SealedLen(n))
			b.Run(fmt.Sprintf("%s/%d/protect", cc.name, n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(n))
				for b.Loop() {
					msg := append(buf[:0], hdr...)
					if _, err := SealPayload(c, msg, inner); err != nil {
						b.Fatal(err)
					}
				}
			})
			msg, _ := SealPayload(c, bytes.Clone(hdr), inner)
			work := make([]byte, len(msg))
			b.Run(fmt.Sprintf("%s/%d/unprotect", cc.name, n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(n))
				for b.Loop() {
					copy(work, msg)
					if _, err := OpenPayload(c, work, len(hdr)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRaw is the primitive alone on the same lengths: AEAD Seal/Open
// with a 12-byte nonce and the same AAD, or CBC encryption plus the full
// HMAC over AAD | IV | ciphertext.
func BenchmarkRaw(b *testing.B) {
	for _, cc := range cipherCases {
		for _, n := range benchSizes {
			c := newTestCipher(b, cc.suite)
			hdr := testHeader(c, n, false, 0)
			ctLen := c.SealedLen(n) - c.IVLen() - c.ICVLen()
			ek := testKey(cc.suite.EncrKeyLen(), 0x40)
			if cc.suite.AEAD() {
				var a cipher.AEAD
				if cc.suite.Encr == ike.EncrChaCha20Poly1305 {
					a, _ = chacha20poly1305.New(ek[:32])
				} else {
					blk, _ := aes.NewCipher(ek[:len(ek)-4])
					a, _ = cipher.NewGCM(blk)
				}
				nonce := make([]byte, 12)
				pt := testKey(ctLen, 1)
				out := make([]byte, 0, ctLen+16)
				b.Run(fmt.Sprintf("%s/%d/seal", cc.name, n), func(b *testing.B) {
					b.ReportAllocs()
					b.SetBytes(int64(n))
					for b.Loop() {
						a.Seal(out[:0], nonce, pt, hdr)
					}
				})
				sealed := a.Seal(nil, nonce, pt, hdr)
				work := make([]byte, len(sealed))
				b.Run(fmt.Sprintf("%s/%d/open", cc.name, n), func(b *testing.B) {
					b.ReportAllocs()
					b.SetBytes(int64(n))
					for b.Loop() {
						copy(work, sealed)
						if _, err := a.Open(work[:0], nonce, work, hdr); err != nil {
							b.Fatal(err)
						}
					}
				})
				continue
			}
			blk, _ := aes.NewCipher(ek)
			iv := make([]byte, 16)
			enc := cipher.NewCBCEncrypter(blk, iv)
			dec := cipher.NewCBCDecrypter(blk, iv)
			var newHash func() hash.Hash
			switch cc.suite.Integ {
			case ike.IntegHMACSHA384_192:
				newHash = sha512.New384
			case ike.IntegHMACSHA512_256:
				newHash = sha512.New
			default:
				newHash = sha256.New
			}
			if cc.suite.Integ == ike.IntegHMACSHA1_96 {
				is, _ := lookupInteg(cc.suite.Integ)
				newHash = is.hash
			}
			mac := hmac.New(newHash, testKey(cc.suite.IntegKeyLen(), 0x80))
			body := make([]byte, 16+ctLen)
			sum := make([]byte, 0, 64)
			run := func(b *testing.B, decrypt bool) {
				b.ReportAllocs()
				b.SetBytes(int64(n))
				for b.Loop() {
					mac.Reset()
					mac.Write(hdr)
					mac.Write(body)
					mac.Sum(sum[:0])
					if decrypt {
						dec.CryptBlocks(body[16:], body[16:])
					} else {
						enc.CryptBlocks(body[16:], body[16:])
					}
				}
			}
			b.Run(fmt.Sprintf("%s/%d/seal", cc.name, n), func(b *testing.B) { run(b, false) })
			b.Run(fmt.Sprintf("%s/%d/open", cc.name, n), func(b *testing.B) { run(b, true) })
		}
	}
}

func BenchmarkDH(b *testing.B) {
	for _, g := range allGroups {
		b.Run(fmt.Sprintf("%d/generate", g), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				k, err := GenerateDH(g, nil)
				if err != nil {
					b.Fatal(err)
				}
				k.Destroy()
			}
		})
		k, _ := GenerateDH(g, nil)
		peer, _ := GenerateDH(g, nil)
		b.Run(fmt.Sprintf("%d/agree", g), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := k.SharedSecret(peer.PublicValue())
				if err != nil {
					b.Fatal(err)
				}
				s.Zero()
			}
		})
	}
}

// BenchmarkKeys is the key work of one side of a handshake with PSK,
// without D-H: SKEYSEED, the IKE keys, the Child SA keys, the IKE ciphers
// of both directions, and the two PSK AUTH values (ours and the peer's
// check), for aes128gcm16-prfsha256 and aes256-sha256-prfsha384.
func BenchmarkKeys(b *testing.B) {
	suites := []struct {
		name       string
		ike, child Suite
	}{
		{"gcm-sha256", Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESGCM16, KeyBits: 128, PRF: ike.PRFHMACSHA256, Group: ike.GroupCurve25519},
			Suite{Protocol: ike.ProtoESP, Encr: ike.EncrAESGCM16, KeyBits: 128}},
		{"cbc-sha384", Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESCBC, KeyBits: 256, Integ: ike.IntegHMACSHA256_128, PRF: ike.PRFHMACSHA384, Group: ike.GroupCurve25519},
			Suite{Protocol: ike.ProtoESP, Encr: ike.EncrAESCBC, KeyBits: 256, Integ: ike.IntegHMACSHA256_128}},
	}
	ni, nr, spi := testKey(32, 1), testKey(32, 2), testKey(8, 3)
	gir := NewSecret(testKey(32, 4))
	psk := NewSecret([]byte("a pre-shared key of some length"))
	msg := testKey(400, 5) // the IKE_SA_INIT message AUTH covers
	id := []byte{2, 0, 0, 0, 'g', 'w'}
	for _, s := range suites {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			p, _ := NewPRF(s.ike.PRF)
			for b.Loop() {
				seed := SKEYSEED(p, ni, nr, gir)
				k, err := DeriveIKEKeys(s.ike, seed, ni, nr, spi, spi)
				if err != nil {
					b.Fatal(err)
				}
				seed.Zero()
				out, in, err := k.Ciphers(true)
				if err != nil {
					b.Fatal(err)
				}
				auth := PSKAuth(p, psk, SignedOctets(p, msg, nr, k.PI, id))
				if err := VerifyPSKAuth(p, psk, SignedOctets(p, msg, nr, k.PI, id), auth); err != nil {
					b.Fatal(err)
				}
				c, err := DeriveChildKeys(k, s.child, Secret{}, ni, nr)
				if err != nil {
					b.Fatal(err)
				}
				c.Zero()
				out.Destroy()
				in.Destroy()
				k.Zero()
			}
		})
	}
}
