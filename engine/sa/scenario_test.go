package sa

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newCA(t testing.TB, seed uint64) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), detRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Country: []string{"CH"}, CommonName: "Test CA"},
		NotBefore: epoch.Add(-time.Hour), NotAfter: epoch.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(detRand(78), tpl, tpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

func (ca *testCA) issue(t testing.TB, cn, dns string, key crypto.Signer, serial int64) *x509.Certificate {
	t.Helper()
	tpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{Country: []string{"CH"}, CommonName: cn},
		DNSNames: []string{dns}, NotBefore: epoch.Add(-time.Hour), NotAfter: epoch.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(detRand(uint64(serial)), tpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func testKey(t testing.TB, kind string, seed uint64) crypto.Signer {
	t.Helper()
	switch kind {
	case "ecdsa":
		k, err := ecdsa.GenerateKey(elliptic.P256(), detRand(seed))
		if err != nil {
			t.Fatal(err)
		}
		return k
	case "ed25519":
		_, k, err := ed25519.GenerateKey(detRand(seed))
		if err != nil {
			t.Fatal(err)
		}
		return k
	case "rsa":
		k, err := rsa.GenerateKey(detRand(seed), 2048)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	t.Fatalf("key kind %q", kind)
	return nil
}

// certPair turns pskPair into certificate authentication.
func certPair(t testing.TB, ca *testCA, kind string) (ini, resp *Config) {
	ini, resp = pskPair(t)
	trust, err := transform.NewTrustStore(ca.cert)
	if err != nil {
		t.Fatal(err)
	}
	ki, kr := testKey(t, kind, 11), testKey(t, kind, 12)
	ini.Auth = Auth{Certs: []*x509.Certificate{ca.issue(t, "client", "client.example", ki, 11)}, Key: ki, Trust: trust}
	resp.Auth = Auth{Certs: []*x509.Certificate{ca.issue(t, "gw", "gw.example", kr, 12)}, Key: kr, Trust: trust}
	return ini, resp
}

func TestEstablishCertificates(t *testing.T) {
	ca := newCA(t, 77)
	for _, kind := range []string{"ecdsa", "ed25519", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			ini, resp := certPair(t, ca, kind)
			// The initiator names itself by its subject DN, the responder by FQDN.
			ini.LocalID = Identity{}
			ini.RemoteID = mustID(t, "@gw.example")
			resp.RemoteID = mustID(t, "C=CH, CN=client")
			p := newPump(t, ini, resp, 3)
			p.run(func() bool { return up(p.i)() && up(p.r)() })
			p.settle()
			if checkPaired(t, p.i, p.r) != 2 {
				t.Fatal("no Child SA")
			}
			if got := p.r.ike.Info().RemoteID.String(); got != "C=CH, CN=client" {
				t.Errorf("responder sees %q", got)
			}
			if len(p.i.ike.Info().Capabilities.SignatureHashes) == 0 {
				t.Errorf("SIGNATURE_HASH_ALGORITHMS not learnt")
			}
		})
	}
	t.Run("untrusted", func(t *testing.T) {
		ini, resp := certPair(t, ca, "ecdsa")
		other := newCA(t, 99)
		k := testKey(t, "ecdsa", 13)
		ini.Auth.Certs = []*x509.Certificate{other.issue(t, "client", "client.example", k, 13)}
		ini.Auth.Key = k
		p := newPump(t, ini, resp, 4)
		p.run(nil)
		if e, ok := p.r.last(EventIKEDown); !ok || e.Reason != ReasonAuthFailed {
			t.Fatalf("responder: %+v", e)
		}
		if e, ok := p.i.last(EventIKEDown); !ok || e.Reason != ReasonAuthFailed || p.i.count(EventAuthFailed) != 1 {
			t.Fatalf("initiator: %+v", e)
		}
	})
	t.Run("identity not in certificate", func(t *testing.T) {
		ini, resp := certPair(t, ca, "ecdsa")
		ini.LocalID = mustID(t, "@someone-else.example")
		p := newPump(t, ini, resp, 5)
		p.run(nil)
		if e, _ := p.r.last(EventIKEDown); e.Reason != ReasonAuthFailed {
			t.Fatalf("responder: %+v", e)
		}
	})
}

func TestAuthFailures(t *testing.T) {
	cases := []struct {
		name string
		edit func(ini, resp *Config)
		// who notices first
		respReason, iniReason Reason
	}{
		{"wrong PSK", func(ini, resp *Config) { resp.Auth.PSK = transform.NewSecret([]byte("another secret")) }, ReasonAuthFailed, ReasonAuthFailed},
		{"responder refuses identity", func(ini, resp *Config) { resp.RemoteID = Identity{Type: ike.IDFQDN, Data: []byte("x")} }, ReasonAuthFailed, ReasonAuthFailed},
		{"initiator refuses identity", func(ini, resp *Config) { ini.RemoteID = Identity{Type: ike.IDFQDN, Data: []byte("x")} }, ReasonAuthFailed, ReasonAuthFailed},
		{"policy refuses", func(ini, resp *Config) {
			resp.Policy = func(id Identity) (*PeerAuth, error) { return nil, &AuthError{Reason: "unknown"} }
		}, ReasonAuthFailed, ReasonAuthFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ini, resp := pskPair(t)
			tc.edit(ini, resp)
			p := newPump(t, ini, resp, 6)
			p.run(nil)
			if e, _ := p.i.last(EventIKEDown); e.Reason != tc.iniReason {
				t.Errorf("initiator down %v, want %v (%s)", e.Reason, tc.iniReason, e.Detail)
			}
			if e, _ := p.r.last(EventIKEDown); e.Reason != tc.respReason {
				t.Errorf("responder down %v, want %v (%s)", e.Reason, tc.respReason, e.Detail)
			}
			if len(activeSAs(p.i)) != 0 || len(activeSAs(p.r)) != 0 {
				t.Errorf("SAs left after failure")
			}
			if p.r.ike.Info().State != StateClosed || !p.i.done {
				t.Errorf("not closed")
			}
		})
	}
	t.Run("policy lookup", func(t *testing.T) {
		ini, resp := pskPair(t)
		psk := ini.Auth.PSK
		resp.Auth.PSK = transform.Secret{}
		var asked Identity
		resp.Policy = func(id Identity) (*PeerAuth, error) { asked = id; return &PeerAuth{PSK: psk}, nil }
		p := newPump(t, ini, resp, 7)
		p.run(func() bool { return up(p.i)() && up(p.r)() })
		if asked.String() != "@client.example" {
			t.Errorf("policy asked for %v", asked)
		}
	})
}

func TestProposalMismatch(t *testing.T) {
	t.Run("IKE", func(t *testing.T) {
		ini, resp := pskPair(t)
		resp.IKEProposals = mustProps(t, "aes128-sha256-modp2048", ike.ProtoIKE)
		p := newPump(t, ini, resp, 8)
		p.run(nil)
		if e, _ := p.i.last(EventIKEDown); e.Reason != ReasonNoProposalChosen || e.Notify != ike.NoProposalChosen {
			t.Fatalf("initiator: %+v", e)
		}
	})
	t.Run("ESP", func(t *testing.T) {
		ini, resp := pskPair(t)
		resp.Children[0].Proposals = mustProps(t, "aes128-sha256", ike.ProtoESP)
		p := newPump(t, ini, resp, 9)
		p.run(func() bool { return up(p.i)() && up(p.r)() })
		p.settle()
		// §2.21.2: a Child SA error in IKE_AUTH leaves the IKE SA up.
		if e, ok := p.i.last(EventChildFailed); !ok || e.Reason != ReasonNoProposalChosen {
			t.Fatalf("initiator child: %+v", e)
		}
		if len(activeSAs(p.i))+len(activeSAs(p.r)) != 0 {
			t.Fatal("SAs installed")
		}
		if len(p.i.ike.cfg.SPIs.(*spiAlloc).used) != 0 {
			t.Errorf("SPI not released")
		}
	})
	t.Run("TS", func(t *testing.T) {
		ini, resp := pskPair(t)
		ini.Children[0].RemoteTS = []ike.TrafficSelector{PrefixTS(mustPrefix("172.16.0.0/12"))}
		p := newPump(t, ini, resp, 10)
		p.run(func() bool { return up(p.i)() && up(p.r)() })
		p.settle()
		if e, _ := p.i.last(EventChildFailed); e.Reason != ReasonTSUnacceptable {
			t.Fatalf("initiator child: %+v", e)
		}
	})
	t.Run("pool empty", func(t *testing.T) {
		ini, resp := pskPair(t)
		resp.Pool = &testPool{fail: true}
		p := newPump(t, ini, resp, 11)
		p.run(func() bool { return up(p.i)() && up(p.r)() })
		p.settle()
		if e, _ := p.i.last(EventChildFailed); e.Reason != ReasonCPFailed || e.Notify != ike.InternalAddressFailure {
			t.Fatalf("initiator child: %+v", e)
		}
	})
}

func TestInvalidKERetry(t *testing.T) {
	ini, resp := pskPair(t)
	ini.IKEProposals = mustProps(t, "aes256gcm16-prfsha256-ecp256-x25519", ike.ProtoIKE)
	resp.IKEProposals = mustProps(t, "aes256gcm16-prfsha256-x25519", ike.ProtoIKE)
	p := newPump(t, ini, resp, 12)
	p.run(func() bool { return up(p.i)() && up(p.r)() })
	var inits [][]byte
	for _, pk := range p.seen {
		if h, _ := ike.DecodeHeader(pk.dg.Data); h.Exchange == ike.IKESAInit && !h.IsResponse() {
			inits = append(inits, pk.dg.Data)
		}
	}
	if len(inits) != 2 {
		t.Fatalf("%d IKE_SA_INIT requests", len(inits))
	}
	m1, _ := ike.Decode(inits[0])
	m2, _ := ike.Decode(inits[1])
	k1, k2 := payloadOf[*ike.KE](m1.Payloads), payloadOf[*ike.KE](m2.Payloads)
	if k1.Group != ike.GroupECP256 || k2.Group != ike.GroupCurve25519 || m1.SPIi != m2.SPIi || m2.MessageID != 0 {
		t.Errorf("KE %v then %v", k1.Group, k2.Group)
	}
	if got := p.i.ike.Info().Algorithms; got != "aes256gcm16-prfsha256-x25519" {
		t.Errorf("algorithms %q", got)
	}
	t.Run("group not offered", func(t *testing.T) {
		ini, resp := pskPair(t)
		ini.IKEProposals = mustProps(t, "aes256gcm16-prfsha256-ecp256", ike.ProtoIKE)
		resp.IKEProposals = mustProps(t, "aes256gcm16-prfsha256-x25519,aes256gcm16-prfsha256-ecp256", ike.ProtoIKE)
		p := newPump(t, ini, resp, 13)
		p.run(func() bool { return up(p.i)() && up(p.r)() })
		// The responder takes ECP-256 from KEi when it can (no round trip).
		if got := p.i.ike.Info().Algorithms; got != "aes256gcm16-prfsha256-ecp256" {
			t.Errorf("algorithms %q", got)
		}
	})
}

func TestCookieRetry(t *testing.T) {
	ini, resp := pskPair(t)
	p := newPump(t, ini, resp, 14)
	p.cookies = NewCookies(detRand(15))
	p.cookies.Threshold = 1
	p.cookies.Opened()
	p.run(func() bool { return up(p.i)() && up(p.r)() })
	var inits []*ike.Message
	for _, pk := range p.seen {
		if h, _ := ike.DecodeHeader(pk.dg.Data); h.Exchange == ike.IKESAInit && !h.IsResponse() {
			m, _ := ike.Decode(pk.dg.Data)
			inits = append(inits, m)
		}
	}
	if len(inits) != 2 {
		t.Fatalf("%d IKE_SA_INIT requests", len(inits))
	}
	first, ok := inits[1].Payloads[0].(*ike.Notify)
	if !ok || first.NotifyType != ike.Cookie {
		t.Fatalf("retry does not start with COOKIE: %T", inits[1].Payloads[0])
	}
	n1, n2 := payloadOf[*ike.Nonce](inits[0].Payloads), payloadOf[*ike.Nonce](inits[1].Payloads)
	if inits[0].SPIi != inits[1].SPIi || !bytes.Equal(n1.Data, n2.Data) {
		t.Error("retry changed SPIi or nonce (RFC 7296 §2.6)")
	}
}

func TestFragmentation(t *testing.T) {
	ca := newCA(t, 77)
	ini, resp := certPair(t, ca, "rsa")
	ini.FragmentMTU, resp.FragmentMTU = 576, 576
	p := newPump(t, ini, resp, 16)
	p.reorder = true
	p.run(func() bool { return up(p.i)() && up(p.r)() })
	p.settle()
	frags := map[bool]int{}
	for _, pk := range p.seen {
		m, err := ike.Decode(pk.dg.Data)
		if err != nil {
			t.Fatal(err)
		}
		if len(pk.dg.Data)+28 > 576 {
			t.Errorf("datagram of %d octets above the MTU", len(pk.dg.Data))
		}
		if _, ok := m.Payloads[len(m.Payloads)-1].(*ike.EncryptedFragment); ok {
			frags[m.IsResponse()]++
		}
	}
	if frags[false] < 2 || frags[true] < 2 {
		t.Fatalf("fragments: %d request, %d response", frags[false], frags[true])
	}
	// Reassembled and idle: neither side keeps a reassembler (RFC 7383).
	for _, n := range []*node{p.i, p.r} {
		if n.ike.cur.assembler() != nil {
			t.Errorf("%s keeps its reassembly state while idle", n.name)
		}
	}
	if checkPaired(t, p.i, p.r) != 2 {
		t.Fatal("no Child SA")
	}
	t.Run("not announced", func(t *testing.T) {
		ini, resp := certPair(t, ca, "ecdsa")
		ini.FragmentMTU = 576
		resp.NoFragmentation = true
		p := newPump(t, ini, resp, 17)
		p.run(func() bool { return up(p.i)() && up(p.r)() })
		for _, pk := range p.seen {
			m, _ := ike.Decode(pk.dg.Data)
			if _, ok := m.Payloads[len(m.Payloads)-1].(*ike.EncryptedFragment); ok {
				t.Fatal("fragmented although the peer did not announce support")
			}
		}
	})
}

func TestRetransmissionUnderLoss(t *testing.T) {
	var total uint64
	for seed := uint64(20); seed < 30; seed++ {
		ini, resp := pskPair(t)
		ini.Retransmit = Retransmit{Timeout: time.Second, Factor: 1.5, Tries: 10}
		resp.Retransmit = ini.Retransmit
		p := newPump(t, ini, resp, seed)
		p.loss = 0.3
		p.run(func() bool { return up(p.i)() && up(p.r)() })
		if !up(p.i)() || !up(p.r)() {
			t.Fatalf("seed %d: not established: %v", seed, p.i.events)
		}
		p.loss = 0
		p.settle()
		total += p.i.ike.Stats().Retransmits
		if checkPaired(t, p.i, p.r) != 2 {
			t.Fatalf("seed %d: SAs do not pair", seed)
		}
	}
	if total < 10 {
		t.Errorf("only %d retransmissions over 10 runs at 30%% loss", total)
	}
}

func TestRetransmitsAreIdentical(t *testing.T) {
	ini, resp := pskPair(t)
	p := newPump(t, ini, resp, 31)
	// Lose the first IKE_AUTH response: the initiator retransmits the same
	// bytes, the responder answers from its cache, byte-identical (§2.1).
	lost := false
	p.drop = func(pk packet) bool {
		h, _ := ike.DecodeHeader(pk.dg.Data)
		if h.Exchange == ike.IKEAuth && h.IsResponse() && !lost {
			lost = true
			return true
		}
		return false
	}
	p.run(func() bool { return up(p.i)() && up(p.r)() })
	var reqs, resps [][]byte
	for _, pk := range p.seen {
		h, _ := ike.DecodeHeader(pk.dg.Data)
		if h.Exchange != ike.IKEAuth {
			continue
		}
		if h.IsResponse() {
			resps = append(resps, pk.dg.Data)
		} else {
			reqs = append(reqs, pk.dg.Data)
		}
	}
	if len(reqs) != 2 || len(resps) != 2 || !bytes.Equal(reqs[0], reqs[1]) || !bytes.Equal(resps[0], resps[1]) {
		t.Fatalf("%d requests, %d responses; identical %v %v", len(reqs), len(resps),
			len(reqs) == 2 && bytes.Equal(reqs[0], reqs[1]), len(resps) == 2 && bytes.Equal(resps[0], resps[1]))
	}
	if p.i.ike.Stats().Retransmits != 1 || p.r.ike.Stats().ResponsesResent != 1 {
		t.Errorf("stats %+v / %+v", p.i.ike.Stats(), p.r.ike.Stats())
	}
	if p.r.count(EventChildUp) != 1 {
		t.Errorf("the retransmission made another Child SA")
	}
}

func TestNATTraversal(t *testing.T) {
	ini, resp := pskPair(t)
	p := newPump(t, ini, resp, 32)
	p.nat = true
	p.run(func() bool { return up(p.i)() && up(p.r)() })
	p.settle()
	ii, ri := p.i.ike.Info(), p.r.ike.Info()
	if !ii.NATLocal || ii.NATRemote || !ri.NATRemote || ri.NATLocal {
		t.Fatalf("NAT flags %v %v / %v %v", ii.NATLocal, ii.NATRemote, ri.NATLocal, ri.NATRemote)
	}
	if ii.Remote.Port() != 4500 || ii.Local.Port() != 4500 || ri.Remote.Port() != 24500 {
		t.Fatalf("ports %v %v / %v", ii.Local, ii.Remote, ri.Remote)
	}
	for _, n := range []*node{p.i, p.r} {
		for _, sa := range activeSAs(n) {
			if !sa.Encap {
				t.Errorf("%s: SA without UDP encapsulation", n.name)
			}
		}
	}
	t.Run("MOBIKE floats without NAT", func(t *testing.T) {
		ini, resp := pskPair(t)
		ini.MOBIKE, resp.MOBIKE = true, true
		p := newPump(t, ini, resp, 33)
		p.run(func() bool { return up(p.i)() && up(p.r)() })
		p.settle()
		ii := p.i.ike.Info()
		if ii.Remote.Port() != 4500 || !ii.Capabilities.MOBIKE || !p.r.ike.Info().Capabilities.MOBIKE {
			t.Fatalf("remote %v, MOBIKE %v", ii.Remote, ii.Capabilities.MOBIKE)
		}
		for _, sa := range activeSAs(p.i) {
			if sa.Encap {
				t.Errorf("encapsulated without a NAT (P1)")
			}
		}
	})
}

func TestTransportMode(t *testing.T) {
	ini, resp := pskPair(t)
	ini.VirtualIP = VirtualIP{}
	resp.Pool = nil
	ini.Children[0].Mode, resp.Children[0].Mode = dataplane.Transport, dataplane.Transport
	ini.Children[0].RemoteTS, resp.Children[0].LocalTS = nil, nil
	p := newPump(t, ini, resp, 34)
	p.run(func() bool { return up(p.i)() && up(p.r)() })
	p.settle()
	for _, sa := range activeSAs(p.i) {
		if sa.Mode != dataplane.Transport {
			t.Fatalf("mode %v", sa.Mode)
		}
	}
	c := p.i.ike.Info().Children[0]
	if tsString(c.LocalTS)[0] != "192.0.2.1/32" || tsString(c.RemoteTS)[0] != "198.51.100.1/32" {
		t.Errorf("TS %v %v", tsString(c.LocalTS), tsString(c.RemoteTS))
	}
}

func TestVirtualIPNotAssigned(t *testing.T) {
	ini, resp := pskPair(t)
	resp.Pool = nil // the responder ignores the CP request
	resp.Children[0].RemoteTS = nil
	p := newPump(t, ini, resp, 35)
	p.run(func() bool { return up(p.i)() && up(p.r)() })
	p.settle()
	if e, _ := p.i.last(EventChildFailed); e.Reason != ReasonCPFailed {
		t.Fatalf("initiator: %+v", p.i.events)
	}
	// The responder's half was deleted: nothing left on either side.
	if len(activeSAs(p.i)) != 0 || len(activeSAs(p.r)) != 0 || len(p.r.ike.Info().Children) != 0 {
		t.Fatalf("SAs left: %d / %d", len(activeSAs(p.i)), len(activeSAs(p.r)))
	}
	if len(p.i.ike.cfg.SPIs.(*spiAlloc).used) != 0 {
		t.Error("SPI not released")
	}
}
