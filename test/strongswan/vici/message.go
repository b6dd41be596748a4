package vici

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Element types of the message encoding (vici README, "Message format").
type elementType uint8

const (
	elemSectionStart elementType = 1
	elemSectionEnd   elementType = 2
	elemKeyValue     elementType = 3
	elemListStart    elementType = 4
	elemListItem     elementType = 5
	elemListEnd      elementType = 6
)

func (e elementType) String() string {
	switch e {
	case elemSectionStart:
		return "SECTION_START"
	case elemSectionEnd:
		return "SECTION_END"
	case elemKeyValue:
		return "KEY_VALUE"
	case elemListStart:
		return "LIST_START"
	case elemListItem:
		return "LIST_ITEM"
	case elemListEnd:
		return "LIST_END"
	}
	return fmt.Sprintf("ELEMENT_%d", uint8(e))
}

// Limits of the encoding: names carry an 8-bit length, values a 16-bit one.
const (
	maxNameLen  = 0xff
	maxValueLen = 0xffff
	// maxDepth bounds section nesting when decoding untrusted input.
	maxDepth = 64
)

// Message is an ordered vici message tree: each key of a section holds a
// string, a list of strings or a sub-section. Order is kept because charon
// reads some sections in order (authentication rounds, proposals).
// The zero value is an empty message ready to use.
type Message struct {
	keys []string
	vals map[string]any // string | []string | *Message
}

// NewMessage returns an empty message.
func NewMessage() *Message { return &Message{} }

func (m *Message) set(key string, v any) *Message {
	if m.vals == nil {
		m.vals = make(map[string]any)
	}
	if _, ok := m.vals[key]; !ok {
		m.keys = append(m.keys, key)
	}
	m.vals[key] = v
	return m
}

// Set sets key to a string value, keeping the key's first position.
func (m *Message) Set(key, value string) *Message { return m.set(key, value) }

// SetList sets key to a list of strings.
func (m *Message) SetList(key string, items ...string) *Message {
	l := make([]string, len(items)) // never nil: an empty list is a value
	copy(l, items)
	return m.set(key, l)
}

// SetSection sets key to a sub-section.
func (m *Message) SetSection(key string, sub *Message) *Message { return m.set(key, sub) }

// Keys returns the keys in order.
func (m *Message) Keys() []string {
	if m == nil {
		return nil
	}
	return append([]string(nil), m.keys...)
}

// Len is the number of keys.
func (m *Message) Len() int {
	if m == nil {
		return 0
	}
	return len(m.keys)
}

// Get returns the string value of key and whether key holds a string.
func (m *Message) Get(key string) (string, bool) {
	if m == nil {
		return "", false
	}
	s, ok := m.vals[key].(string)
	return s, ok
}

// Str returns the string value of key, or "" when absent.
func (m *Message) Str(key string) string {
	s, _ := m.Get(key)
	return s
}

// List returns the list value of key (nil when absent).
func (m *Message) List(key string) []string {
	if m == nil {
		return nil
	}
	l, _ := m.vals[key].([]string)
	return l
}

// Section returns the sub-section of key (nil when absent).
func (m *Message) Section(key string) *Message {
	if m == nil {
		return nil
	}
	s, _ := m.vals[key].(*Message)
	return s
}

// Value returns whatever key holds: string, []string, *Message or nil.
func (m *Message) Value(key string) any {
	if m == nil {
		return nil
	}
	return m.vals[key]
}

// Delete removes key.
func (m *Message) Delete(key string) {
	if m == nil {
		return
	}
	if _, ok := m.vals[key]; !ok {
		return
	}
	delete(m.vals, key)
	for i, k := range m.keys {
		if k == key {
			m.keys = append(m.keys[:i], m.keys[i+1:]...)
			break
		}
	}
}

// String renders the tree in the pseudo-markup of the vici README, for
// logs and test failures. Keys named like secrets are redacted.
func (m *Message) String() string {
	var b strings.Builder
	m.format(&b, 0)
	return b.String()
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	return k == "data" || k == "secret" || strings.HasPrefix(k, "secret")
}

func (m *Message) format(b *strings.Builder, depth int) {
	ind := strings.Repeat("  ", depth)
	for _, k := range m.Keys() {
		switch v := m.vals[k].(type) {
		case string:
			if isSecretKey(k) {
				v = "[redacted]"
			}
			fmt.Fprintf(b, "%s%s = %s\n", ind, k, v)
		case []string:
			fmt.Fprintf(b, "%s%s = [%s]\n", ind, k, strings.Join(v, ", "))
		case *Message:
			fmt.Fprintf(b, "%s%s {\n", ind, k)
			v.format(b, depth+1)
			fmt.Fprintf(b, "%s}\n", ind)
		}
	}
}

// Equal reports whether two messages have the same keys in the same order
// with equal values.
func (m *Message) Equal(o *Message) bool {
	if m.Len() != o.Len() {
		return false
	}
	for i, k := range m.Keys() {
		if o.keys[i] != k {
			return false
		}
		switch v := m.vals[k].(type) {
		case string:
			w, ok := o.vals[k].(string)
			if !ok || v != w {
				return false
			}
		case []string:
			w, ok := o.vals[k].([]string)
			if !ok || len(v) != len(w) {
				return false
			}
			for j := range v {
				if v[j] != w[j] {
					return false
				}
			}
		case *Message:
			w, ok := o.vals[k].(*Message)
			if !ok || !v.Equal(w) {
				return false
			}
		}
	}
	return true
}

// Marshal encodes the message (vici README, "Message format").
func (m *Message) Marshal() ([]byte, error) {
	return m.appendTo(nil, 0)
}

func appendName(b []byte, name string) ([]byte, error) {
	if len(name) > maxNameLen {
		return nil, &EncodeError{Key: name, Reason: fmt.Sprintf("name is %d bytes, the limit is %d", len(name), maxNameLen)}
	}
	b = append(b, byte(len(name)))
	return append(b, name...), nil
}

func appendValue(b []byte, key, v string) ([]byte, error) {
	if len(v) > maxValueLen {
		return nil, &EncodeError{Key: key, Reason: fmt.Sprintf("value is %d bytes, the limit is %d", len(v), maxValueLen)}
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...), nil
}

func (m *Message) appendTo(b []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, &EncodeError{Reason: fmt.Sprintf("sections nested deeper than %d", maxDepth)}
	}
	var err error
	for _, k := range m.Keys() {
		switch v := m.vals[k].(type) {
		case string:
			b = append(b, byte(elemKeyValue))
			if b, err = appendName(b, k); err != nil {
				return nil, err
			}
			if b, err = appendValue(b, k, v); err != nil {
				return nil, err
			}
		case []string:
			b = append(b, byte(elemListStart))
			if b, err = appendName(b, k); err != nil {
				return nil, err
			}
			for _, it := range v {
				b = append(b, byte(elemListItem))
				if b, err = appendValue(b, k, it); err != nil {
					return nil, err
				}
			}
			b = append(b, byte(elemListEnd))
		case *Message:
			b = append(b, byte(elemSectionStart))
			if b, err = appendName(b, k); err != nil {
				return nil, err
			}
			if b, err = v.appendTo(b, depth+1); err != nil {
				return nil, err
			}
			b = append(b, byte(elemSectionEnd))
		}
	}
	return b, nil
}

// Unmarshal decodes a message. Input is untrusted: any malformation gives
// a *DecodeError, never a panic.
func Unmarshal(data []byte) (*Message, error) {
	d := decoder{data: data}
	root := &Message{}
	stack := []*Message{root}
	var list *[]string
	var listKey string
	for d.off < len(d.data) {
		at := d.off
		t := elementType(d.data[d.off])
		d.off++
		cur := stack[len(stack)-1]
		if list != nil && t != elemListItem && t != elemListEnd {
			return nil, d.errAt(at, fmt.Sprintf("%v inside list %q", t, listKey))
		}
		switch t {
		case elemSectionStart, elemKeyValue, elemListStart:
			name, err := d.name()
			if err != nil {
				return nil, err
			}
			if _, dup := cur.vals[name]; dup {
				return nil, d.errAt(at, fmt.Sprintf("duplicate key %q", name))
			}
			switch t {
			case elemSectionStart:
				if len(stack) > maxDepth {
					return nil, d.errAt(at, fmt.Sprintf("sections nested deeper than %d", maxDepth))
				}
				sub := &Message{}
				cur.set(name, sub)
				stack = append(stack, sub)
			case elemKeyValue:
				v, err := d.value()
				if err != nil {
					return nil, err
				}
				cur.set(name, v)
			case elemListStart:
				l := []string{}
				list, listKey = &l, name
			}
		case elemSectionEnd:
			if len(stack) == 1 {
				return nil, d.errAt(at, "SECTION_END without an open section")
			}
			stack = stack[:len(stack)-1]
		case elemListItem:
			if list == nil {
				return nil, d.errAt(at, "LIST_ITEM outside a list")
			}
			v, err := d.value()
			if err != nil {
				return nil, err
			}
			*list = append(*list, v)
		case elemListEnd:
			if list == nil {
				return nil, d.errAt(at, "LIST_END without an open list")
			}
			cur.set(listKey, *list)
			list = nil
		default:
			return nil, d.errAt(at, fmt.Sprintf("unknown element type %d", uint8(t)))
		}
	}
	if list != nil {
		return nil, d.errAt(d.off, fmt.Sprintf("list %q not closed", listKey))
	}
	if len(stack) != 1 {
		return nil, d.errAt(d.off, fmt.Sprintf("%d section(s) not closed", len(stack)-1))
	}
	return root, nil
}

type decoder struct {
	data []byte
	off  int
}

func (d *decoder) errAt(off int, reason string) error {
	return &DecodeError{Offset: off, Reason: reason}
}

func (d *decoder) name() (string, error) {
	if d.off >= len(d.data) {
		return "", d.errAt(d.off, "truncated name length")
	}
	n := int(d.data[d.off])
	d.off++
	if d.off+n > len(d.data) {
		return "", d.errAt(d.off, fmt.Sprintf("name of %d bytes exceeds the message", n))
	}
	s := string(d.data[d.off : d.off+n])
	d.off += n
	return s, nil
}

func (d *decoder) value() (string, error) {
	if d.off+2 > len(d.data) {
		return "", d.errAt(d.off, "truncated value length")
	}
	n := int(binary.BigEndian.Uint16(d.data[d.off:]))
	d.off += 2
	if d.off+n > len(d.data) {
		return "", d.errAt(d.off, fmt.Sprintf("value of %d bytes exceeds the message", n))
	}
	s := string(d.data[d.off : d.off+n])
	d.off += n
	return s, nil
}
