package vici

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readHex(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	out, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The encoding example of the vici README, both ways.
func TestReadmeExample(t *testing.T) {
	want := readHex(t, "readme-example.hex")
	m := NewMessage().Set("key1", "value1").SetSection("section1",
		NewMessage().SetSection("sub-section", NewMessage().Set("key2", "value2")).
			SetList("list1", "item1", "item2"))
	got, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding\n got %x\nwant %x", got, want)
	}
	d, err := Unmarshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Equal(m) {
		t.Fatalf("decoded\n%s\nwant\n%s", d, m)
	}
	if s := d.Section("section1").Section("sub-section").Str("key2"); s != "value2" {
		t.Fatalf("key2 = %q", s)
	}
	if l := d.Section("section1").List("list1"); len(l) != 2 || l[1] != "item2" {
		t.Fatalf("list1 = %q", l)
	}
}

func TestMessageOrderAndAccessors(t *testing.T) {
	m := NewMessage().Set("b", "1").Set("a", "2").SetList("l").Set("b", "3")
	if got := strings.Join(m.Keys(), ","); got != "b,a,l" {
		t.Fatalf("keys %s", got)
	}
	if m.Str("b") != "3" || m.List("l") == nil || len(m.List("l")) != 0 {
		t.Fatalf("values %s", m)
	}
	if _, ok := m.Get("l"); ok {
		t.Fatal("list read as string")
	}
	if m.Section("a") != nil || m.List("a") != nil || m.Value("zz") != nil {
		t.Fatal("wrong kind returned")
	}
	m.Delete("a")
	m.Delete("missing")
	if got := strings.Join(m.Keys(), ","); got != "b,l" {
		t.Fatalf("after delete %s", got)
	}
	var nilMsg *Message
	if nilMsg.Len() != 0 || nilMsg.Str("x") != "" || nilMsg.Keys() != nil {
		t.Fatal("nil message not empty")
	}
	// An empty list survives a round trip.
	b, _ := m.Marshal()
	d, err := Unmarshal(b)
	if err != nil || !d.Equal(m) {
		t.Fatalf("round trip: %v\n%s", err, d)
	}
}

func TestMessageStringRedacts(t *testing.T) {
	m := NewMessage().Set("type", "IKE").Set("data", "hunter2").SetSection("s", NewMessage().Set("secret", "hunter2"))
	if s := m.String(); strings.Contains(s, "hunter2") || !strings.Contains(s, "[redacted]") {
		t.Fatalf("String leaks:\n%s", s)
	}
	if s := Secret("hunter2").String(); s != "[redacted]" {
		t.Fatalf("Secret.String = %q", s)
	}
	sec := Secret("abc")
	sec.Zero()
	if !bytes.Equal(sec, []byte{0, 0, 0}) {
		t.Fatalf("Zero left %q", sec)
	}
}

func TestEncodeLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *Message
	}{
		{"long name", NewMessage().Set(strings.Repeat("k", 256), "v")},
		{"long value", NewMessage().Set("k", strings.Repeat("v", 65536))},
		{"long list item", NewMessage().SetList("k", strings.Repeat("v", 65536))},
		{"long section name", NewMessage().SetSection(strings.Repeat("s", 300), NewMessage())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.m.Marshal()
			var ee *EncodeError
			if !errors.As(err, &ee) || ee.Reason == "" {
				t.Fatalf("err = %v, want *EncodeError", err)
			}
		})
	}
	deep := NewMessage()
	cur := deep
	for i := 0; i < maxDepth+2; i++ {
		n := NewMessage()
		cur.SetSection("s", n)
		cur = n
	}
	if _, err := deep.Marshal(); err == nil {
		t.Fatal("nesting beyond the limit encoded")
	}
	// The limits themselves are fine.
	ok := NewMessage().Set(strings.Repeat("k", 255), strings.Repeat("v", 65535))
	b, err := ok.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := Unmarshal(b); err != nil || !d.Equal(ok) {
		t.Fatalf("max sizes: %v", err)
	}
}

func TestUnmarshalMalformed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     []byte
		reason string
	}{
		{"unknown element", []byte{9}, "unknown element type 9"},
		{"zero element", []byte{0}, "unknown element type 0"},
		{"truncated name length", []byte{3}, "truncated name length"},
		{"name past end", []byte{3, 5, 'a'}, "name of 5 bytes"},
		{"truncated value length", []byte{3, 1, 'a', 0}, "truncated value length"},
		{"value past end", []byte{3, 1, 'a', 0, 9, 'x'}, "value of 9 bytes"},
		{"section end at root", []byte{2}, "SECTION_END without an open section"},
		{"section not closed", []byte{1, 1, 's'}, "1 section(s) not closed"},
		{"list item outside list", []byte{5, 0, 1, 'x'}, "LIST_ITEM outside a list"},
		{"list end outside list", []byte{6}, "LIST_END without an open list"},
		{"list not closed", []byte{4, 1, 'l', 5, 0, 0}, `list "l" not closed`},
		{"key value in list", []byte{4, 1, 'l', 3, 1, 'k', 0, 0}, `KEY_VALUE inside list "l"`},
		{"section in list", []byte{4, 1, 'l', 1, 1, 's'}, `SECTION_START inside list "l"`},
		{"nested list", []byte{4, 1, 'l', 4, 1, 'm'}, `LIST_START inside list "l"`},
		{"duplicate key", []byte{3, 1, 'k', 0, 0, 3, 1, 'k', 0, 0}, `duplicate key "k"`},
		{"duplicate section", []byte{1, 1, 's', 2, 4, 1, 's', 6}, `duplicate key "s"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal(tc.in)
			var de *DecodeError
			if !errors.As(err, &de) || !strings.Contains(de.Reason, tc.reason) {
				t.Fatalf("err = %v, want reason %q", err, tc.reason)
			}
		})
	}
	deep := bytes.Repeat([]byte{1, 1, 's'}, maxDepth+2)
	if _, err := Unmarshal(deep); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("deep nesting: %v", err)
	}
	if m, err := Unmarshal(nil); err != nil || m.Len() != 0 {
		t.Fatalf("empty message: %v", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, name := range []string{"list-sa-gw.bin", "event-child-rekey.bin", "stats.bin"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	b, _ := hex.DecodeString("0304")
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Unmarshal(in)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		// Decoding is canonical: what decodes re-encodes to the same bytes.
		if !bytes.Equal(out, in) {
			t.Fatalf("re-encoding differs\n in %x\nout %x", in, out)
		}
	})
}
