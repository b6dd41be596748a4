package ike

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

// A layout like strongSwan's default: 1280-octet datagrams over IPv4 on port
// 4500, AES-CBC (16-octet IV and block) with HMAC-SHA2-256-128.
var cbcLayout = FragmentLayout{MaxDatagram: 1280, Overhead: 20 + 8 + 4, IVLen: 16, ICVLen: 16, BlockSize: 16}

func TestFragmentLayoutMaxPlaintext(t *testing.T) {
	tests := []struct {
		l    FragmentLayout
		want int // 0 = error
	}{
		// 1280-32-28-8-16-16 = 1180 → 1168 (73 blocks) - 1
		{cbcLayout, 1167},
		// GCM: 8-octet IV, 16-octet ICV, no alignment: 1280-48-28-8-8-16 - 1
		{FragmentLayout{MaxDatagram: 1280, Overhead: 48, IVLen: 8, ICVLen: 16}, 1171},
		{FragmentLayout{MaxDatagram: 100, Overhead: 48, IVLen: 8, ICVLen: 16}, 0},
		{FragmentLayout{MaxDatagram: 1280, Overhead: -1}, 0},
	}
	for _, tt := range tests {
		got, err := tt.l.MaxPlaintext()
		if tt.want == 0 {
			if err == nil {
				t.Errorf("%+v: no error", tt.l)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%+v: got %d %v, want %d", tt.l, got, err, tt.want)
		}
	}
}

// A certificate-sized IKE_AUTH inner chain is split, every fragment fits the
// layout once sealed, and reassembly in any order gives the chain back.
func TestSplitReassemble(t *testing.T) {
	inner := append(ikeAuthInner(), &Cert{Encoding: CertX509Signature, Data: seq(3000, 0)})
	first, chain, err := EncodePayloads(inner)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := SplitFragments(first, chain, cbcLayout)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != (len(chain)+1166)/1167 || len(fs) < 3 {
		t.Fatalf("%d fragments for %d octets", len(fs), len(chain))
	}
	for i, f := range fs {
		// Seal-size check: padded ciphertext + IV + ICV in a datagram.
		ct := (len(f.Data) + 1 + 15) / 16 * 16
		m := &Message{Header: Header{SPIi: 1, SPIr: 2, Exchange: IKEAuth, MessageID: 1},
			Payloads: []Payload{&EncryptedFragment{First: f.First, Number: f.Number, Total: f.Total, Body: make([]byte, 16+ct+16)}}}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if len(b)+cbcLayout.Overhead > cbcLayout.MaxDatagram {
			t.Fatalf("fragment %d: datagram %d > %d", f.Number, len(b)+cbcLayout.Overhead, cbcLayout.MaxDatagram)
		}
		if int(f.Number) != i+1 || int(f.Total) != len(fs) || (i == 0) != (f.First == first) {
			t.Fatalf("fragment %d header %+v", i, f)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 5; round++ {
		r := NewReassembler(0, 0)
		order := rng.Perm(len(fs))
		for k, i := range order {
			gotFirst, got, done, err := r.Add(fs[i])
			if err != nil {
				t.Fatal(err)
			}
			// A retransmitted duplicate is ignored.
			if k == 0 {
				if _, _, d, err := r.Add(fs[i]); d || err != nil {
					t.Fatalf("duplicate: done %v err %v", d, err)
				}
			}
			if done != (k == len(order)-1) {
				t.Fatalf("done = %v after %d of %d", done, k+1, len(order))
			}
			if done {
				if gotFirst != first || !bytes.Equal(got, chain) {
					t.Fatalf("reassembled %v %d octets", gotFirst, len(got))
				}
				ps, err := DecodePayloads(gotFirst, got)
				if err != nil || !reflect.DeepEqual(ps, inner) {
					t.Fatalf("decoded reassembly differs: %v", err)
				}
			}
		}
		if g, tot := r.Pending(); g != 0 || tot != 0 {
			t.Fatalf("Pending after done = %d/%d", g, tot)
		}
	}
}

func TestSplitSmall(t *testing.T) {
	fs, err := SplitFragments(PayloadNone, nil, cbcLayout)
	if err != nil || len(fs) != 1 || fs[0].Number != 1 || fs[0].Total != 1 {
		t.Fatalf("%+v %v", fs, err)
	}
	if _, err := SplitFragments(PayloadIDi, seq(10, 0), FragmentLayout{MaxDatagram: 37}); err == nil {
		t.Fatal("no error for a layout without room")
	}
}

func TestReassemblerErrors(t *testing.T) {
	frag := func(n, total int, size int) Fragment {
		f := Fragment{Number: uint16(n), Total: uint16(total), Data: seq(size, byte(n))}
		if n == 1 {
			f.First = PayloadIDi
		}
		return f
	}
	type step struct {
		f    Fragment
		err  error // nil, or the sentinel
		done bool
	}
	tests := []struct {
		name     string
		maxFrags int
		maxSize  int
		steps    []step
		pending  [2]int
	}{
		{"number 0", 0, 0, []step{{f: frag(0, 2, 1), err: ErrFragmentInvalid}}, [2]int{0, 0}},
		{"number above total", 0, 0, []step{{f: frag(3, 2, 1), err: ErrFragmentInvalid}}, [2]int{0, 0}},
		{"total 0", 0, 0, []step{{f: frag(1, 0, 1), err: ErrFragmentInvalid}}, [2]int{0, 0}},
		{"too many fragments", 4, 0, []step{{f: frag(1, 5, 1), err: ErrFragmentLimit}}, [2]int{0, 0}},
		{"too large", 0, 10, []step{{f: frag(1, 3, 6)}, {f: frag(2, 3, 6), err: ErrFragmentLimit}}, [2]int{0, 0}},
		{"smaller total refused, state kept", 0, 0, []step{{f: frag(1, 3, 4)}, {f: frag(2, 2, 4), err: ErrFragmentTotal}}, [2]int{1, 3}},
		{"larger total restarts", 0, 0, []step{{f: frag(1, 2, 4)}, {f: frag(3, 3, 4)}, {f: frag(2, 2, 4), err: ErrFragmentTotal}}, [2]int{1, 3}},
		{"restart then complete", 0, 0, []step{{f: frag(2, 2, 4)}, {f: frag(1, 3, 4)}, {f: frag(3, 3, 4)}, {f: frag(2, 3, 4), done: true}}, [2]int{0, 0}},
		{"duplicate ignored", 0, 0, []step{{f: frag(2, 3, 4)}, {f: frag(2, 3, 4)}}, [2]int{1, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReassembler(tt.maxFrags, tt.maxSize)
			for i, s := range tt.steps {
				first, _, done, err := r.Add(s.f)
				if s.err == nil && err != nil || s.err != nil && !errors.Is(err, s.err) {
					t.Fatalf("step %d: err %v, want %v", i, err, s.err)
				}
				var fe *FragmentError
				if err != nil && (!errors.As(err, &fe) || fe.Reason == "") {
					t.Fatalf("step %d: err %T", i, err)
				}
				if done != s.done || done && first != PayloadIDi {
					t.Fatalf("step %d: done %v first %v", i, done, first)
				}
			}
			if g, tot := r.Pending(); g != tt.pending[0] || tot != tt.pending[1] {
				t.Fatalf("Pending = %d/%d, want %v", g, tot, tt.pending)
			}
		})
	}
}

// Add copies its input: the caller may reuse decrypt buffers.
func TestReassemblerCopies(t *testing.T) {
	r := NewReassembler(0, 0)
	buf := []byte{1, 2, 3}
	r.Add(Fragment{First: PayloadNotify, Number: 1, Total: 2, Data: buf})
	buf[0] = 9
	_, got, done, err := r.Add(Fragment{Number: 2, Total: 2, Data: []byte{4}})
	if err != nil || !done || !bytes.Equal(got, []byte{1, 2, 3, 4}) {
		t.Fatalf("got %v %v %v", got, done, err)
	}
}
