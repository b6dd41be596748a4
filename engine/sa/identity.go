package sa

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mifsec/mifsec/engine/ike"
)

// Identity is an IKE identity: the content of an IDi/IDr payload (RFC 7296
// §3.5). The zero Identity (Type 0) is "%any": it matches every peer and is
// only valid as a remote identity.
type Identity struct {
	Type ike.IDType
	Data []byte
}

// AnyID is "%any".
var AnyID = Identity{}

// IsAny reports whether id is "%any".
func (id Identity) IsAny() bool { return id.Type == 0 }

// Equal compares type and value (strongSwan matches both, PROTOCOL.md P6).
func (id Identity) Equal(o Identity) bool {
	return id.Type == o.Type && bytes.Equal(id.Data, o.Data)
}

// Matches reports whether a peer's identity is acceptable for a configured
// remote identity id: "%any" accepts everything, otherwise type and value
// must be equal.
func (id Identity) Matches(peer Identity) bool { return id.IsAny() || id.Equal(peer) }

func (id Identity) payload(responder bool) *ike.Identification {
	return &ike.Identification{Responder: responder, IDType: id.Type, Data: bytes.Clone(id.Data)}
}

func identityOf(p *ike.Identification) Identity {
	return Identity{Type: p.IDType, Data: bytes.Clone(p.Data)}
}

// dnAttrs maps strongSwan's DN keywords to attribute OIDs (RFC 4519, RFC 5280).
var dnAttrs = []struct {
	key string
	oid asn1.ObjectIdentifier
}{
	{"C", asn1.ObjectIdentifier{2, 5, 4, 6}},
	{"ST", asn1.ObjectIdentifier{2, 5, 4, 8}},
	{"L", asn1.ObjectIdentifier{2, 5, 4, 7}},
	{"O", asn1.ObjectIdentifier{2, 5, 4, 10}},
	{"OU", asn1.ObjectIdentifier{2, 5, 4, 11}},
	{"CN", asn1.ObjectIdentifier{2, 5, 4, 3}},
	{"SN", asn1.ObjectIdentifier{2, 5, 4, 4}},
	{"serialNumber", asn1.ObjectIdentifier{2, 5, 4, 5}},
	{"street", asn1.ObjectIdentifier{2, 5, 4, 9}},
	{"postalCode", asn1.ObjectIdentifier{2, 5, 4, 17}},
	{"DC", asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}},
	{"UID", asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}},
	{"E", asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}},
}

// IdentityError reports an identity string that cannot be parsed.
type IdentityError struct {
	Input  string
	Reason string
}

func (e *IdentityError) Error() string { return fmt.Sprintf("sa: identity %q: %s", e.Input, e.Reason) }

// ParseIdentity reads strongSwan's identity syntax (identification.c,
// PROTOCOL.md P6):
//
//	%any                      any peer (remote identities only)
//	192.0.2.1, 2001:db8::1    ID_IPV4_ADDR, ID_IPV6_ADDR
//	@vpn.example.com          ID_FQDN (a bare name with a dot also works)
//	user@example.com          ID_RFC822_ADDR
//	C=CH, O=Org, CN=host      ID_DER_ASN1_DN, attributes in the given order
//	keyid:0123abcd            ID_KEY_ID
func ParseIdentity(s string) (Identity, error) {
	t := strings.TrimSpace(s)
	bad := func(r string) (Identity, error) { return Identity{}, &IdentityError{Input: s, Reason: r} }
	switch {
	case t == "":
		return bad("empty")
	case t == "%any" || t == "%any6":
		return AnyID, nil
	case strings.HasPrefix(t, "keyid:"):
		b, err := hex.DecodeString(strings.TrimPrefix(t, "keyid:"))
		if err != nil || len(b) == 0 {
			return bad("keyid: needs hex digits")
		}
		return Identity{Type: ike.IDKeyID, Data: b}, nil
	case strings.HasPrefix(t, "@"):
		if len(t) == 1 {
			return bad("empty FQDN")
		}
		return Identity{Type: ike.IDFQDN, Data: []byte(t[1:])}, nil
	case strings.Contains(t, "="):
		der, err := parseDN(t)
		if err != nil {
			return bad(err.Error())
		}
		return Identity{Type: ike.IDDERASN1DN, Data: der}, nil
	}
	if a, err := netip.ParseAddr(t); err == nil {
		if a.Zone() != "" {
			return bad("address with a zone")
		}
		return Identity{Type: addrIDType(a), Data: a.Unmap().AsSlice()}, nil
	}
	if strings.Contains(t, "@") {
		return Identity{Type: ike.IDRFC822Addr, Data: []byte(t)}, nil
	}
	return Identity{Type: ike.IDFQDN, Data: []byte(t)}, nil
}

func addrIDType(a netip.Addr) ike.IDType {
	if a.Unmap().Is4() {
		return ike.IDIPv4Addr
	}
	return ike.IDIPv6Addr
}

// IdentityFromAddr is the default identity of a host without one: its address.
func IdentityFromAddr(a netip.Addr) Identity {
	return Identity{Type: addrIDType(a), Data: a.Unmap().AsSlice()}
}

func parseDN(s string) ([]byte, error) {
	var seq pkix.RDNSequence
	for _, part := range splitDN(s) {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("DN component %q is not KEY=value", part)
		}
		var oid asn1.ObjectIdentifier
		for _, a := range dnAttrs {
			if strings.EqualFold(a.key, k) {
				oid = a.oid
			}
		}
		if oid == nil {
			return nil, fmt.Errorf("unknown DN attribute %q", k)
		}
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: v}})
	}
	return asn1.Marshal(seq)
}

// splitDN splits at commas or slashes not escaped by a backslash.
func splitDN(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == ',' || (c == '/' && i > 0):
			out = append(out, cur.String())
			cur.Reset()
		case c == '/' && i == 0:
		default:
			cur.WriteByte(c)
		}
	}
	return append(out, cur.String())
}

// String writes the identity back in ParseIdentity's syntax.
func (id Identity) String() string {
	switch id.Type {
	case 0:
		return "%any"
	case ike.IDIPv4Addr, ike.IDIPv6Addr:
		if a, ok := netip.AddrFromSlice(id.Data); ok {
			return a.String()
		}
	case ike.IDFQDN:
		return "@" + string(id.Data)
	case ike.IDRFC822Addr:
		return string(id.Data)
	case ike.IDKeyID:
		return "keyid:" + hex.EncodeToString(id.Data)
	case ike.IDDERASN1DN:
		var seq pkix.RDNSequence
		if rest, err := asn1.Unmarshal(id.Data, &seq); err == nil && len(rest) == 0 {
			return formatDN(seq)
		}
	}
	return id.Type.String() + ":" + hex.EncodeToString(id.Data)
}

func formatDN(seq pkix.RDNSequence) string {
	var parts []string
	for _, rdn := range seq {
		for _, atv := range rdn {
			k := atv.Type.String()
			for _, a := range dnAttrs {
				if a.oid.Equal(atv.Type) {
					k = a.key
				}
			}
			parts = append(parts, fmt.Sprintf("%s=%v", k, atv.Value))
		}
	}
	return strings.Join(parts, ", ")
}
