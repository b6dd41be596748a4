package sa

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
)

func TestParseIdentity(t *testing.T) {
	dn, _ := asn1.Marshal(pkix.RDNSequence{
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 6}, Value: "CH"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "strongSwan"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "moon.strongswan.org"}},
	})
	cases := []struct {
		in     string
		typ    ike.IDType
		data   []byte
		str    string
		errors bool
	}{
		{"@vpn.example.com", ike.IDFQDN, []byte("vpn.example.com"), "@vpn.example.com", false},
		{"vpn.example.com", ike.IDFQDN, []byte("vpn.example.com"), "@vpn.example.com", false},
		{"alice@example.com", ike.IDRFC822Addr, []byte("alice@example.com"), "alice@example.com", false},
		{"192.0.2.1", ike.IDIPv4Addr, []byte{192, 0, 2, 1}, "192.0.2.1", false},
		{"::ffff:192.0.2.1", ike.IDIPv4Addr, []byte{192, 0, 2, 1}, "192.0.2.1", false},
		{"2001:db8::1", ike.IDIPv6Addr, netip.MustParseAddr("2001:db8::1").AsSlice(), "2001:db8::1", false},
		{"C=CH, O=strongSwan, CN=moon.strongswan.org", ike.IDDERASN1DN, dn, "C=CH, O=strongSwan, CN=moon.strongswan.org", false},
		{"C=CH,O=strongSwan,CN=moon.strongswan.org", ike.IDDERASN1DN, dn, "C=CH, O=strongSwan, CN=moon.strongswan.org", false},
		{"keyid:0a0B", ike.IDKeyID, []byte{0x0a, 0x0b}, "keyid:0a0b", false},
		{"%any", 0, nil, "%any", false},
		{"", 0, nil, "", true},
		{"@", 0, nil, "", true},
		{"keyid:xyz", 0, nil, "", true},
		{"keyid:", 0, nil, "", true},
		{"C=CH, XX=bad", 0, nil, "", true},
		{"C=", 0, nil, "", true},
		{"fe80::1%eth0", 0, nil, "", true},
	}
	for _, tc := range cases {
		id, err := ParseIdentity(tc.in)
		if tc.errors {
			if err == nil {
				t.Errorf("%q: no error", tc.in)
			} else if _, ok := err.(*IdentityError); !ok {
				t.Errorf("%q: error type %T", tc.in, err)
			}
			continue
		}
		if err != nil || id.Type != tc.typ || !bytes.Equal(id.Data, tc.data) || id.String() != tc.str {
			t.Errorf("%q: %v %v %x %q", tc.in, err, id.Type, id.Data, id.String())
		}
		back, err := ParseIdentity(id.String())
		if err != nil || !back.Equal(id) {
			t.Errorf("%q does not round-trip", tc.in)
		}
	}
	any := AnyID
	if !any.Matches(mustID(t, "@x")) || mustID(t, "@x").Matches(mustID(t, "x@y")) || !mustID(t, "@x").Matches(mustID(t, "x")) {
		t.Error("Matches")
	}
	// A DN matches the subject a certificate from the same fields carries.
	ca := newCA(t, 79)
	c := ca.issue(t, "client", "client.example", testKey(t, "ecdsa", 3), 3)
	if id := mustID(t, "C=CH, CN=client"); !bytes.Equal(id.Data, c.RawSubject) {
		t.Error("DN encoding differs from crypto/x509's")
	}
}

func TestTrafficSelectors(t *testing.T) {
	ts := func(s string) ike.TrafficSelector { return PrefixTS(netip.MustParsePrefix(s)) }
	port := func(t ike.TrafficSelector, proto uint8, a, b uint16) ike.TrafficSelector {
		t.IPProtocol, t.StartPort, t.EndPort = proto, a, b
		return t
	}
	cases := []struct {
		name              string
		proposed, allowed []ike.TrafficSelector
		want              []string
	}{
		{"any to pool address", []ike.TrafficSelector{ts("0.0.0.0/0")}, []ike.TrafficSelector{HostTS(netip.MustParseAddr("10.10.0.1"))}, []string{"10.10.0.1/32"}},
		{"subnet inside", []ike.TrafficSelector{ts("10.0.0.0/8")}, []ike.TrafficSelector{ts("10.1.0.0/16")}, []string{"10.1.0.0/16"}},
		{"disjoint", []ike.TrafficSelector{ts("10.0.0.0/8")}, []ike.TrafficSelector{ts("172.16.0.0/12")}, nil},
		{"families", []ike.TrafficSelector{ts("::/0")}, []ike.TrafficSelector{ts("10.0.0.0/8")}, nil},
		{"protocol", []ike.TrafficSelector{port(ts("10.0.0.0/8"), 6, 0, 65535)}, []ike.TrafficSelector{port(ts("10.0.0.0/8"), 0, 80, 443)}, []string{"10.0.0.0/8[6/80-443]"}},
		{"protocol clash", []ike.TrafficSelector{port(ts("10.0.0.0/8"), 6, 0, 65535)}, []ike.TrafficSelector{port(ts("10.0.0.0/8"), 17, 0, 65535)}, nil},
		{"two", []ike.TrafficSelector{ts("10.0.0.0/8"), ts("fd00::/8")}, []ike.TrafficSelector{ts("10.2.0.0/16"), ts("fd00:1::/32")}, []string{"10.2.0.0/16", "fd00:1::/32"}},
	}
	for _, tc := range cases {
		got := tsString(narrow(nil, tc.proposed, tc.allowed))
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
		if n := narrow(nil, tc.proposed, tc.allowed); len(n) > 0 && !subsetTS(n, tc.proposed) {
			t.Errorf("%s: narrowed set not inside the proposal", tc.name)
		}
	}
	if subsetTS([]ike.TrafficSelector{ts("10.0.0.0/7")}, []ike.TrafficSelector{ts("10.0.0.0/8")}) {
		t.Error("a wider selector passed as a subset")
	}
	// Ranges that are not prefixes become several data-plane selectors.
	r := ike.TrafficSelector{Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("10.0.0.6"), EndPort: 0xffff}
	var got []string
	for _, s := range selectors([]ike.TrafficSelector{r}) {
		got = append(got, s.Prefix.String())
	}
	want := []string{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"}
	if len(got) != len(want) {
		t.Fatalf("prefixes %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("prefixes %v, want %v", got, want)
		}
	}
	if n := len(rangePrefixes(netip.MustParseAddr("::1"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"))); n != 254 {
		t.Errorf("worst IPv6 range: %d prefixes", n)
	}
	if n := len(rangePrefixes(netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255"))); n != 1 {
		t.Errorf("whole IPv4: %d prefixes", n)
	}
}

func TestCookies(t *testing.T) {
	c := NewCookies(detRand(1))
	c.Rotate = time.Minute
	ni := bytes.Repeat([]byte{7}, 32)
	ip := netip.MustParseAddr("192.0.2.1")
	ck, err := c.Compute(epoch, ni, ip, 42)
	if err != nil || len(ck) < 1 || len(ck) > 64 {
		t.Fatalf("cookie %x %v", ck, err)
	}
	for _, tc := range []struct {
		name string
		at   time.Time
		ni   []byte
		ip   netip.Addr
		spi  uint64
		ok   bool
	}{
		{"same", epoch, ni, ip, 42, true},
		{"after one rotation", epoch.Add(90 * time.Second), ni, ip, 42, true},
		{"other SPI", epoch, ni, ip, 43, false},
		{"other address", epoch, ni, netip.MustParseAddr("192.0.2.2"), 42, false},
		{"other nonce", epoch, ni[:31], ip, 42, false},
		{"after two rotations", epoch.Add(5 * time.Minute), ni, ip, 42, false},
	} {
		if got := c.Verify(tc.at, ck, tc.ni, tc.ip, tc.spi); got != tc.ok {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
	if c.Verify(epoch.Add(5*time.Minute), nil, ni, ip, 42) {
		t.Error("empty cookie accepted")
	}
	// Threshold and AcceptInit.
	ini, _ := pskPair(t)
	_, out := NewInitiator(ini, epoch, detRand(2))
	d := Datagram{Local: addrR, Remote: addrI, Data: out.Datagrams[0].Data}
	j := NewCookies(detRand(3))
	j.Threshold = 2
	if _, ok := j.AcceptInit(epoch, d, nil); !ok {
		t.Fatal("refused below the threshold")
	}
	j.Opened()
	j.Opened()
	reply, ok := j.AcceptInit(epoch, d, nil)
	if ok || reply == nil {
		t.Fatal("no cookie demanded above the threshold")
	}
	m, err := ike.Decode(reply)
	if err != nil || m.SPIr != 0 || !m.IsResponse() || len(m.Payloads) != 1 {
		t.Fatalf("cookie reply %+v %v", m, err)
	}
	j.Settled()
	if j.HalfOpen() != 1 || j.Required() {
		t.Error("Settled")
	}
	if _, ok := j.AcceptInit(epoch, Datagram{Data: []byte("junk")}, nil); ok {
		t.Error("accepted junk")
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]func(c *Config){
		"no proposals":   func(c *Config) { c.IKEProposals = nil },
		"ESP as IKE":     func(c *Config) { c.IKEProposals = c.Children[0].Proposals },
		"no auth":        func(c *Config) { c.Auth = Auth{} },
		"no SPIs":        func(c *Config) { c.SPIs = nil },
		"no remote":      func(c *Config) { c.Remote = netip.AddrPort{} },
		"child no props": func(c *Config) { c.Children[0].Proposals = nil },
	}
	for name, edit := range cases {
		ini, _ := pskPair(t)
		edit(ini)
		m, out := NewInitiator(ini, epoch, detRand(1))
		if !out.Done || len(out.Datagrams) != 0 || m.State() != StateClosed || len(out.Events) != 1 || out.Events[0].Reason != ReasonInternal {
			t.Errorf("%s: %+v", name, out)
		}
	}
	if _, out := NewInitiator(nil, epoch, nil); !out.Done {
		t.Error("nil config")
	}
}

func TestStringers(t *testing.T) {
	for _, s := range []interface{ String() string }{StateEstablished, State(99), Initiator, Role(9), CmdRekeyIKE, CommandKind(99),
		OpAddSA, OpKind(99), EventIKEUp, EventKind(99), ReasonDPDTimeout, Reason(99), DropIntegrity, DropReason(99)} {
		if s.String() == "" {
			t.Errorf("%T: empty name", s)
		}
	}
	if ReasonDPDTimeout.String() != "dpd_timeout" || DropIntegrity.String() != "integrity" {
		t.Error("names")
	}
}

// NAT-D hashes are SHA-1(SPIi | SPIr | IP | Port) (RFC 7296 §2.23), with
// IPv4-mapped addresses as IPv4; natMatch finds which side is behind a NAT.
func TestNATDetection(t *testing.T) {
	literal := func(spii, spir uint64, ap netip.AddrPort) []byte {
		var b []byte
		b = binary.BigEndian.AppendUint64(b, spii)
		b = binary.BigEndian.AppendUint64(b, spir)
		b = append(b, ap.Addr().Unmap().AsSlice()...)
		b = binary.BigEndian.AppendUint16(b, ap.Port())
		h := sha1.Sum(b)
		return h[:]
	}
	l4, r4 := netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("198.51.100.7:4500")
	l6, r6 := netip.MustParseAddrPort("[2001:db8::1]:500"), netip.MustParseAddrPort("[2001:db8:1::9]:500")
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.1]:500")
	for _, ap := range []netip.AddrPort{l4, r4, l6, r6, mapped} {
		if got := natSum(0x1122334455667788, 0x99, ap); !bytes.Equal(got[:], literal(0x1122334455667788, 0x99, ap)) {
			t.Errorf("%v: NAT-D hash differs from the literal definition", ap)
		}
	}
	// A message from the peer r4 to us l4, as the peer saw the addresses.
	msg := func(src, dst netip.AddrPort) []ike.Payload {
		s, d := natNotifies(7, 8, src, dst)
		return []ike.Payload{&ike.Nonce{Data: []byte{1}}, s, d}
	}
	for _, tc := range []struct {
		name                string
		ps                  []ike.Payload
		natLocal, natRemote bool
		seen                bool
	}{
		{"no NAT", msg(r4, l4), false, false, true},
		{"we are behind a NAT", msg(r4, netip.MustParseAddrPort("203.0.113.5:500")), true, false, true},
		{"the peer is behind a NAT", msg(netip.MustParseAddrPort("10.0.0.2:500"), l4), false, true, true},
		{"both", msg(netip.MustParseAddrPort("10.0.0.2:500"), netip.MustParseAddrPort("203.0.113.5:500")), true, true, true},
		{"no notifies", []ike.Payload{&ike.Nonce{Data: []byte{1}}}, false, false, false},
		{"source only", msg(r4, l4)[:2], false, false, false},
		{"one of several source hashes matches", append(msg(netip.MustParseAddrPort("10.0.0.2:500"), l4), msg(r4, l4)[1]), false, false, true},
	} {
		nl, nr, seen := natMatch(tc.ps, 7, 8, l4, r4)
		if nl != tc.natLocal || nr != tc.natRemote || seen != tc.seen {
			t.Errorf("%s: natLocal %v natRemote %v seen %v, want %v %v %v", tc.name, nl, nr, seen, tc.natLocal, tc.natRemote, tc.seen)
		}
	}
}
