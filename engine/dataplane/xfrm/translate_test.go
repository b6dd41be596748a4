package xfrm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

func testSA(s dataplane.Suite, dir dataplane.Direction) dataplane.SA {
	su := suites[s]
	return dataplane.SA{
		SPI: 0x1234, Direction: dir, Mode: dataplane.Tunnel, Suite: s,
		Keys:  dataplane.Keys{Enc: bytes.Repeat([]byte{0xaa}, su.encLen), Integ: bytes.Repeat([]byte{0xbb}, su.authLen)},
		Local: netip.MustParseAddrPort("192.0.2.1:4500"), Remote: netip.MustParseAddrPort("198.51.100.2:4501"),
	}
}

func TestKernelStateSuites(t *testing.T) {
	tests := []struct {
		suite            dataplane.Suite
		aead, enc, auth  string
		keyBits, icvBits int
	}{
		{dataplane.SuiteAESGCM128, "rfc4106(gcm(aes))", "", "", 160, 128},
		{dataplane.SuiteAESGCM256, "rfc4106(gcm(aes))", "", "", 288, 128},
		{dataplane.SuiteChaCha20Poly1305, "rfc7539esp(chacha20,poly1305)", "", "", 288, 128},
		{dataplane.SuiteAESCBC128HMACSHA256, "", "cbc(aes)", "hmac(sha256)", 128, 128},
		{dataplane.SuiteAESCBC256HMACSHA256, "", "cbc(aes)", "hmac(sha256)", 256, 128},
		{dataplane.SuiteAESCBC128HMACSHA1, "", "cbc(aes)", "hmac(sha1)", 128, 96},
		{dataplane.SuiteAESCBC256HMACSHA384, "", "cbc(aes)", "hmac(sha384)", 256, 192},
		{dataplane.SuiteAESCBC256HMACSHA512, "", "cbc(aes)", "hmac(sha512)", 256, 256},
	}
	for _, tc := range tests {
		t.Run(tc.suite.String(), func(t *testing.T) {
			st, err := kernelState(testSA(tc.suite, dataplane.Out), 7, BindMark, ^uint32(0))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.aead != "":
				if st.Aead == nil || st.Aead.Name != tc.aead || len(st.Aead.Key)*8 != tc.keyBits || st.Aead.ICVLen != tc.icvBits || st.Crypt != nil || st.Auth != nil {
					t.Fatalf("aead = %s/%d bits/icv %d", st.Aead.Name, len(st.Aead.Key)*8, st.Aead.ICVLen)
				}
			default:
				if st.Aead != nil || st.Crypt.Name != tc.enc || len(st.Crypt.Key)*8 != tc.keyBits || st.Auth.Name != tc.auth || st.Auth.TruncateLen != tc.icvBits {
					t.Fatalf("enc %s/%d auth %s trunc %d", st.Crypt.Name, len(st.Crypt.Key)*8, st.Auth.Name, st.Auth.TruncateLen)
				}
			}
			if st.Spi != 0x1234 || st.Reqid != 7 || st.Mode != netlink.XFRM_MODE_TUNNEL || st.Proto != netlink.XFRM_PROTO_ESP {
				t.Fatalf("id: spi %x reqid %d mode %s", st.Spi, st.Reqid, st.Mode)
			}
			if !st.Src.Equal(net.ParseIP("192.0.2.1")) || !st.Dst.Equal(net.ParseIP("198.51.100.2")) {
				t.Fatalf("outbound addresses %s → %s", st.Src, st.Dst)
			}
		})
	}
}

func TestKernelStateOptions(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*dataplane.SA)
		check func(*testing.T, *netlink.XfrmState)
		bind  Binding
	}{
		{"inbound swaps addresses and keeps the window", func(s *dataplane.SA) { s.Direction = dataplane.In; s.ReplayWindow = 32 },
			func(t *testing.T, st *netlink.XfrmState) {
				if !st.Src.Equal(net.ParseIP("198.51.100.2")) || st.ReplayWindow != 32 || st.ESN {
					t.Fatalf("src %s window %d esn %v", st.Src, st.ReplayWindow, st.ESN)
				}
			}, BindMark},
		{"legacy window capped at 32", func(s *dataplane.SA) { s.Direction = dataplane.In; s.ReplayWindow = 1024 },
			func(t *testing.T, st *netlink.XfrmState) {
				if st.ReplayWindow != 32 {
					t.Fatalf("window %d", st.ReplayWindow)
				}
			}, BindMark},
		{"ESN keeps large windows", func(s *dataplane.SA) { s.Direction = dataplane.In; s.ReplayWindow = 4096; s.ESN = true },
			func(t *testing.T, st *netlink.XfrmState) {
				if !st.ESN || st.ReplayWindow != 4096 {
					t.Fatalf("esn %v window %d", st.ESN, st.ReplayWindow)
				}
			}, BindMark},
		{"outbound ESN gets a nominal window", func(s *dataplane.SA) { s.ESN = true; s.ReplayWindow = 0 },
			func(t *testing.T, st *netlink.XfrmState) {
				if !st.ESN || st.ReplayWindow == 0 {
					t.Fatalf("esn %v window %d", st.ESN, st.ReplayWindow)
				}
			}, BindMark},
		{"outbound has no replay window", func(s *dataplane.SA) { s.ReplayWindow = 64 },
			func(t *testing.T, st *netlink.XfrmState) {
				if st.ReplayWindow != 0 {
					t.Fatalf("window %d", st.ReplayWindow)
				}
			}, BindMark},
		{"UDP encapsulation uses the outer ports", func(s *dataplane.SA) { s.Encap = true },
			func(t *testing.T, st *netlink.XfrmState) {
				if st.Encap == nil || st.Encap.Type != netlink.XFRM_ENCAP_ESPINUDP || st.Encap.SrcPort != 4500 || st.Encap.DstPort != 4501 {
					t.Fatalf("encap %+v", st.Encap)
				}
			}, BindMark},
		{"limits", func(s *dataplane.SA) { s.Limits = dataplane.Limits{SoftPackets: 3, HardBytes: 1 << 30} },
			func(t *testing.T, st *netlink.XfrmState) {
				if st.Limits.PacketSoft != 3 || st.Limits.ByteHard != 1<<30 || st.Limits.PacketHard != 0 {
					t.Fatalf("limits %+v", st.Limits)
				}
			}, BindMark},
		{"inbound path sets the output mark", func(s *dataplane.SA) { s.Direction = dataplane.In; s.Path = 3 },
			func(t *testing.T, st *netlink.XfrmState) {
				if st.OutputMark == nil || st.OutputMark.Value != 3<<8 || st.OutputMark.Mask != 0xff00 || st.Mark != nil || st.Ifid != 0 {
					t.Fatalf("output mark %+v mark %v", st.OutputMark, st.Mark)
				}
			}, BindMark},
		{"outbound path has no mark", func(s *dataplane.SA) { s.Path = 3 },
			func(t *testing.T, st *netlink.XfrmState) {
				if st.OutputMark != nil || st.Mark != nil {
					t.Fatal("outbound state marked")
				}
			}, BindMark},
		{"if_id binding", func(s *dataplane.SA) { s.Direction = dataplane.In; s.Path = 9 },
			func(t *testing.T, st *netlink.XfrmState) {
				if st.Ifid != 9 || st.OutputMark != nil {
					t.Fatalf("ifid %d", st.Ifid)
				}
			}, BindIfID},
		{"inbound state selector", func(s *dataplane.SA) {
			s.Direction = dataplane.In
			s.LocalTS = []dataplane.Selector{{Prefix: netip.MustParsePrefix("10.1.0.0/16")}}
			s.RemoteTS = []dataplane.Selector{{Prefix: netip.MustParsePrefix("10.2.0.0/16"), Protocol: 17, PortFrom: 53, PortTo: 53}}
		}, func(t *testing.T, st *netlink.XfrmState) {
			if st.Selector == nil || st.Selector.Src.String() != "10.2.0.0/16" || st.Selector.Dst.String() != "10.1.0.0/16" || st.Selector.Proto != 17 || st.Selector.SrcPort != 53 || st.Selector.DstPort != 0 {
				t.Fatalf("selector %v", st.Selector)
			}
		}, BindMark},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sa := testSA(dataplane.SuiteAESGCM128, dataplane.Out)
			tc.edit(&sa)
			st, err := kernelState(sa, 1, tc.bind, 0xff00)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, st)
		})
	}
}

func TestKernelStateErrors(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(*dataplane.SA)
		unsupported bool
		reason      string
	}{
		{"reserved SPI", func(s *dataplane.SA) { s.SPI = 255 }, false, "reserved"},
		{"no direction", func(s *dataplane.SA) { s.Direction = 0 }, false, "direction"},
		{"unknown suite", func(s *dataplane.SA) { s.Suite = 99 }, false, "suite"},
		{"short key", func(s *dataplane.SA) { s.Keys.Enc = s.Keys.Enc[:16] }, false, "key bytes"},
		{"integrity key for AEAD", func(s *dataplane.SA) { s.Keys.Integ = []byte{1} }, false, "key bytes"},
		{"no mode", func(s *dataplane.SA) { s.Mode = 0 }, false, "mode"},
		{"mixed outer families", func(s *dataplane.SA) { s.Remote = netip.MustParseAddrPort("[2001:db8::1]:500") }, false, "families"},
		{"missing outer", func(s *dataplane.SA) { s.Local = netip.AddrPort{} }, false, "must be set"},
		{"window too large", func(s *dataplane.SA) { s.ReplayWindow = 4097 }, false, "replay window"},
		{"encap without port", func(s *dataplane.SA) { s.Encap = true; s.Local = netip.MustParseAddrPort("192.0.2.1:0") }, false, "ports"},
		{"TFC padding", func(s *dataplane.SA) { s.TFCPadding = true }, true, "TFC"},
		{"inbound ESN without window", func(s *dataplane.SA) { s.Direction = dataplane.In; s.ESN = true }, true, "ESN"},
		{"path outside mask", func(s *dataplane.SA) { s.Direction = dataplane.In; s.Path = 0x100 }, false, "mask"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sa := testSA(dataplane.SuiteAESGCM128, dataplane.Out)
			tc.edit(&sa)
			_, err := kernelState(sa, 1, BindMark, 0xff00)
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want *Error mentioning %q", err, tc.reason)
			}
			if errors.Is(err, dataplane.ErrUnsupported) != tc.unsupported {
				t.Fatalf("ErrUnsupported = %v, want %v", !tc.unsupported, tc.unsupported)
			}
			if strings.Contains(err.Error(), "aaaa") || strings.Contains(err.Error(), "170") {
				t.Fatalf("key material in error %q", err)
			}
		})
	}
}

func TestMarkFor(t *testing.T) {
	tests := []struct {
		path, mask, value uint32
		ok                bool
	}{
		{0, 0xffffffff, 0, true},
		{1, 0xffffffff, 1, true},
		{5, 0x00ff0000, 0x00050000, true},
		{0x100, 0x00ff0000, 0, false},
		{1, 0x80000000, 0x80000000, true},
		{2, 0x80000000, 0, false},
	}
	for _, tc := range tests {
		v, m, err := markFor(tc.path, tc.mask)
		if (err == nil) != tc.ok || (tc.ok && v != tc.value) || (tc.ok && tc.path != 0 && m != tc.mask) {
			t.Errorf("markFor(%d, %#x) = %#x, %#x, %v", tc.path, tc.mask, v, m, err)
		}
	}
}

// table is a fake SA table for kernelPolicies.
func table(recs ...*saRecord) func(uint32, dataplane.Direction) (*saRecord, bool) {
	return func(spi uint32, dir dataplane.Direction) (*saRecord, bool) {
		for _, r := range recs {
			if r.sa.SPI == spi && r.sa.Direction == dir {
				return r, true
			}
		}
		return nil, false
	}
}

func rec(spi uint32, dir dataplane.Direction, path uint32, local, remote string, reqid uint32) *saRecord {
	return &saRecord{reqid: reqid, sa: dataplane.SA{SPI: spi, Direction: dir, Mode: dataplane.Tunnel, Path: path,
		Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote)}}
}

func pol(dir dataplane.Direction, spis ...uint32) dataplane.Policy {
	return dataplane.Policy{ID: 1, Direction: dir, Action: dataplane.Protect, SPIs: spis, Priority: 10,
		Local:  []dataplane.Selector{{Prefix: netip.MustParsePrefix("10.1.0.0/16")}},
		Remote: []dataplane.Selector{{Prefix: netip.MustParsePrefix("10.2.0.0/16")}}}
}

func TestKernelPolicies(t *testing.T) {
	sas := table(
		rec(0x100, dataplane.Out, 0, "192.0.2.1:0", "198.51.100.1:0", 1),
		rec(0x101, dataplane.Out, 1, "192.0.2.1:0", "198.51.100.1:0", 2),
		rec(0x102, dataplane.Out, 2, "203.0.113.1:0", "198.51.100.1:0", 3),
		rec(0x103, dataplane.Out, 1, "192.0.2.1:0", "198.51.100.1:0", 4),
		rec(0x200, dataplane.In, 1, "192.0.2.1:0", "198.51.100.1:0", 5),
		rec(0x201, dataplane.In, 0, "192.0.2.1:0", "198.51.100.1:0", 6),
	)
	type want struct {
		dir      netlink.Dir
		mark     uint32 // 0 = unmarked
		ifid     int
		reqid    int
		tmplSrc  string
		priority int
	}
	tests := []struct {
		name string
		p    dataplane.Policy
		bind Binding
		want []want
	}{
		{"out, unmarked path", pol(dataplane.Out, 0x100), BindMark,
			[]want{{netlink.XFRM_DIR_OUT, 0, 0, 1, "192.0.2.1", 10}}},
		{"out, marked path gets an unmarked default", pol(dataplane.Out, 0x101), BindMark,
			[]want{{netlink.XFRM_DIR_OUT, 1, 0, 2, "192.0.2.1", 10}, {netlink.XFRM_DIR_OUT, 0, 0, 2, "192.0.2.1", 11}}},
		{"out, two paths: first SPI of each path, default = first path", pol(dataplane.Out, 0x102, 0x101, 0x103), BindMark,
			[]want{{netlink.XFRM_DIR_OUT, 2, 0, 3, "203.0.113.1", 10}, {netlink.XFRM_DIR_OUT, 1, 0, 2, "192.0.2.1", 10}, {netlink.XFRM_DIR_OUT, 0, 0, 3, "203.0.113.1", 11}}},
		{"out, path 0 listed: no extra default", pol(dataplane.Out, 0x101, 0x100), BindMark,
			[]want{{netlink.XFRM_DIR_OUT, 1, 0, 2, "192.0.2.1", 10}, {netlink.XFRM_DIR_OUT, 0, 0, 1, "192.0.2.1", 10}}},
		{"in: in and fwd, any reqid, remote is the source", pol(dataplane.In, 0x201), BindMark,
			[]want{{netlink.XFRM_DIR_IN, 0, 0, 0, "198.51.100.1", 10}, {netlink.XFRM_DIR_FWD, 0, 0, 0, "198.51.100.1", 10}}},
		{"in, marked path keeps an unmarked catch-all", pol(dataplane.In, 0x200), BindMark,
			[]want{{netlink.XFRM_DIR_IN, 1, 0, 0, "198.51.100.1", 10}, {netlink.XFRM_DIR_IN, 0, 0, 0, "198.51.100.1", 11},
				{netlink.XFRM_DIR_FWD, 1, 0, 0, "198.51.100.1", 10}, {netlink.XFRM_DIR_FWD, 0, 0, 0, "198.51.100.1", 11}}},
		{"if_id binding: one policy per path, no default", pol(dataplane.Out, 0x101, 0x102), BindIfID,
			[]want{{netlink.XFRM_DIR_OUT, 0, 1, 2, "192.0.2.1", 10}, {netlink.XFRM_DIR_OUT, 0, 2, 3, "203.0.113.1", 10}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kernelPolicies(tc.p, sas, tc.bind, ^uint32(0))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d kernel policies, want %d", len(got), len(tc.want))
			}
			for i, w := range tc.want {
				g := got[i]
				var mark uint32
				if g.Mark != nil {
					mark = g.Mark.Value
				}
				if g.Dir != w.dir || mark != w.mark || g.Ifid != w.ifid || g.Priority != w.priority || len(g.Tmpls) != 1 ||
					g.Tmpls[0].Reqid != w.reqid || !g.Tmpls[0].Src.Equal(net.ParseIP(w.tmplSrc)) || g.Tmpls[0].Mode != netlink.XFRM_MODE_TUNNEL {
					t.Errorf("policy %d: dir %s mark %d ifid %d prio %d tmpl %s reqid %d; want %+v", i, g.Dir, mark, g.Ifid, g.Priority, g.Tmpls[0].Src, g.Tmpls[0].Reqid, w)
				}
				src, dst := "10.1.0.0/16", "10.2.0.0/16"
				if w.dir != netlink.XFRM_DIR_OUT {
					src, dst = dst, src
				}
				if g.Src.String() != src || g.Dst.String() != dst {
					t.Errorf("policy %d: selector %s → %s", i, g.Src, g.Dst)
				}
			}
		})
	}
}

func TestKernelPoliciesSelectors(t *testing.T) {
	sas := table(rec(0x100, dataplane.Out, 0, "192.0.2.1:0", "198.51.100.1:0", 1))
	p := pol(dataplane.Out, 0x100)
	p.Local = []dataplane.Selector{
		{Prefix: netip.MustParsePrefix("10.1.0.0/16"), Protocol: 6, PortFrom: 80, PortTo: 80},
		{Prefix: netip.MustParsePrefix("2001:db8:1::/48")},
	}
	p.Remote = []dataplane.Selector{
		{Prefix: netip.MustParsePrefix("10.2.0.0/16"), Protocol: 6},
		{Prefix: netip.MustParsePrefix("2001:db8:2::/48"), PortFrom: 0, PortTo: 65535},
		{Prefix: netip.MustParsePrefix("10.3.0.0/16"), Protocol: 17}, // TCP × UDP: nothing
	}
	got, err := kernelPolicies(p, sas, BindMark, ^uint32(0))
	if err != nil {
		t.Fatal(err)
	}
	var sels []string
	for _, g := range got {
		sels = append(sels, fmt.Sprintf("%s>%s proto=%d ports=%d/%d", g.Src, g.Dst, g.Proto, g.SrcPort, g.DstPort))
	}
	want := []string{"10.1.0.0/16>10.2.0.0/16 proto=6 ports=80/0", "2001:db8:1::/48>2001:db8:2::/48 proto=0 ports=0/0"}
	if strings.Join(sels, " ") != strings.Join(want, " ") {
		t.Fatalf("selectors %v, want %v", sels, want)
	}
}

func TestKernelPoliciesActionsAndErrors(t *testing.T) {
	sas := table(rec(0x100, dataplane.Out, 0, "192.0.2.1:0", "198.51.100.1:0", 1), rec(0x200, dataplane.In, 0, "192.0.2.1:0", "198.51.100.1:0", 2))
	bypass := pol(dataplane.Out)
	bypass.Action = dataplane.Bypass
	got, err := kernelPolicies(bypass, sas, BindMark, ^uint32(0))
	if err != nil || len(got) != 1 || got[0].Action != netlink.XFRM_POLICY_ALLOW || len(got[0].Tmpls) != 0 {
		t.Fatalf("bypass: %v %v", got, err)
	}
	discard := pol(dataplane.In)
	discard.Action = dataplane.Discard
	got, err = kernelPolicies(discard, sas, BindMark, ^uint32(0))
	if err != nil || len(got) != 2 || got[0].Action != netlink.XFRM_POLICY_BLOCK || got[1].Dir != netlink.XFRM_DIR_FWD {
		t.Fatalf("discard: %v %v", got, err)
	}

	tests := []struct {
		name   string
		edit   func(*dataplane.Policy)
		target error
		reason string
	}{
		{"unknown SA", func(p *dataplane.Policy) { p.SPIs = []uint32{0x999} }, dataplane.ErrNotFound, "not installed"},
		{"SA of the other direction", func(p *dataplane.Policy) { p.SPIs = []uint32{0x200} }, dataplane.ErrNotFound, "not installed"},
		{"protect without SAs", func(p *dataplane.Policy) { p.SPIs = nil }, nil, "at least one SA"},
		{"no selectors", func(p *dataplane.Policy) { p.Local = nil }, nil, "selectors are required"},
		{"port range", func(p *dataplane.Policy) { p.Remote[0].PortFrom, p.Remote[0].PortTo = 1000, 2000 }, dataplane.ErrUnsupported, "port range 1000-2000"},
		{"families never meet", func(p *dataplane.Policy) { p.Remote[0].Prefix = netip.MustParsePrefix("2001:db8::/32") }, nil, "no local × remote"},
		{"bad action", func(p *dataplane.Policy) { p.Action = 0 }, nil, "action"},
		{"bad direction", func(p *dataplane.Policy) { p.Direction = 0 }, nil, "direction"},
		{"huge priority", func(p *dataplane.Policy) { p.Priority = 1 << 31 }, nil, "priority"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := pol(dataplane.Out, 0x100)
			tc.edit(&p)
			_, err := kernelPolicies(p, sas, BindMark, ^uint32(0))
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want *Error mentioning %q", err, tc.reason)
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Fatalf("err = %v, want %v", err, tc.target)
			}
		})
	}
}

func TestMoveMarshal(t *testing.T) {
	m := move{
		oldSrc: netip.MustParseAddr("192.0.2.1"), oldDst: netip.MustParseAddr("198.51.100.2"),
		newSrc: netip.MustParseAddr("2001:db8::1"), newDst: netip.MustParseAddr("2001:db8::2"),
		mode: netlink.XFRM_MODE_TUNNEL, reqid: 0x01020304,
	}
	b := m.marshal()
	if len(b) != sizeofUserMigrate {
		t.Fatalf("%d bytes", len(b))
	}
	ne := binary.NativeEndian
	checks := []struct {
		name string
		ok   bool
	}{
		{"old_daddr", bytes.Equal(b[0:4], []byte{198, 51, 100, 2}) && bytes.Equal(b[4:16], make([]byte, 12))},
		{"old_saddr", bytes.Equal(b[16:20], []byte{192, 0, 2, 1})},
		{"new_daddr", bytes.Equal(b[32:48], netip.MustParseAddr("2001:db8::2").AsSlice())},
		{"new_saddr", bytes.Equal(b[48:64], netip.MustParseAddr("2001:db8::1").AsSlice())},
		{"proto", b[64] == unix.IPPROTO_ESP},
		{"mode", b[65] == 1},
		{"reqid", ne.Uint32(b[68:]) == 0x01020304},
		{"old_family", ne.Uint16(b[72:]) == unix.AF_INET},
		{"new_family", ne.Uint16(b[74:]) == unix.AF_INET6},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s wrong: % x", c.name, b)
		}
	}
}

func TestMigrateRequest(t *testing.T) {
	m := move{oldSrc: netip.MustParseAddr("192.0.2.1"), oldDst: netip.MustParseAddr("198.51.100.2"),
		newSrc: netip.MustParseAddr("192.0.2.9"), newDst: netip.MustParseAddr("198.51.100.2"), mode: netlink.XFRM_MODE_TUNNEL, reqid: 5}
	req := migrateRequest(m, netlink.XFRM_DIR_IN, &netlink.XfrmStateEncap{Type: netlink.XFRM_ENCAP_ESPINUDP, SrcPort: 4500, DstPort: 4501}, 7)
	b := req.Serialize()
	if binary.NativeEndian.Uint16(b[4:]) != nl.XFRM_MSG_MIGRATE {
		t.Fatalf("type %d", binary.NativeEndian.Uint16(b[4:]))
	}
	body := b[unix.SizeofNlMsghdr:]
	id := nl.DeserializeXfrmUserpolicyId(body)
	if id.Dir != uint8(netlink.XFRM_DIR_IN) || id.Sel.Family != unix.AF_INET || id.Sel.PrefixlenD != 32 || id.Sel.PrefixlenS != 32 {
		t.Fatalf("policy id %+v", id)
	}
	// The selector must be the helper policy's, byte for byte (the kernel memcmps it).
	var helperSel nl.XfrmSelector
	helperSel.Family = unix.AF_INET
	helperSel.PrefixlenD, helperSel.PrefixlenS = 32, 32
	if !bytes.Equal(id.Sel.Serialize(), helperSel.Serialize()) {
		t.Fatal("selector differs from the helper policy's")
	}
	attrs, err := nl.ParseRouteAttr(body[nl.SizeofXfrmUserpolicyId:])
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint16][]byte{}
	for _, a := range attrs {
		seen[a.Attr.Type] = a.Value
	}
	if !bytes.Equal(seen[nl.XFRMA_MIGRATE], m.marshal()) {
		t.Fatal("XFRMA_MIGRATE missing or wrong")
	}
	e := seen[nl.XFRMA_ENCAP]
	if len(e) != nl.SizeofXfrmEncapTmpl || binary.BigEndian.Uint16(e[2:]) != 4500 || binary.BigEndian.Uint16(e[4:]) != 4501 {
		t.Fatalf("XFRMA_ENCAP % x", e)
	}
	if v := seen[nl.XFRMA_IF_ID]; len(v) != 4 || binary.NativeEndian.Uint32(v) != 7 {
		t.Fatalf("XFRMA_IF_ID % x", v)
	}
}

// usersa builds the struct xfrm_usersa_info part of a kernel message.
func usersa(spi uint32, dst []byte, fam uint16) []byte {
	b := make([]byte, sizeofUsersa)
	copy(b[usersaID:], dst)
	binary.BigEndian.PutUint32(b[usersaID+16:], spi)
	b[usersaID+20] = unix.IPPROTO_ESP
	binary.NativeEndian.PutUint16(b[usersaFamily:], fam)
	return b
}

func TestParseExpire(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::7")
	tests := []struct {
		name string
		b    []byte
		want expire
		err  bool
	}{
		{"soft v4", append(usersa(0xc0ffee01, []byte{10, 0, 0, 2}, unix.AF_INET), 0, 0, 0, 0, 0, 0, 0, 0),
			expire{spi: 0xc0ffee01, dst: netip.MustParseAddr("10.0.0.2")}, false},
		{"hard v6", append(usersa(0x1234, v6.AsSlice(), unix.AF_INET6), 1, 0, 0, 0, 0, 0, 0, 0),
			expire{spi: 0x1234, dst: v6, hard: true}, false},
		{"short", usersa(1, []byte{1, 2, 3, 4}, unix.AF_INET), expire{}, true},
		{"bad family", append(usersa(1, []byte{1, 2, 3, 4}, 99), 0), expire{}, true},
		{"empty", nil, expire{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseExpire(tc.b)
			var pe *ParseError
			if tc.err != errors.As(err, &pe) {
				t.Fatalf("err = %v", err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func acquireMsg(src, dst netip.Addr, proto uint8, sport, dport uint16, fam uint16) []byte {
	b := make([]byte, 280) // sizeof(struct xfrm_user_acquire)
	sel := b[acquireSel:]
	copy(sel[0:], dst.AsSlice())
	copy(sel[16:], src.AsSlice())
	binary.BigEndian.PutUint16(sel[32:], dport)
	binary.BigEndian.PutUint16(sel[36:], sport)
	binary.NativeEndian.PutUint16(sel[40:], fam)
	sel[44] = proto
	return b
}

func TestParseAcquire(t *testing.T) {
	a4, b4 := netip.MustParseAddr("172.16.1.1"), netip.MustParseAddr("172.16.2.1")
	a6, b6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	tests := []struct {
		name string
		b    []byte
		want dataplane.Flow
		err  bool
	}{
		{"icmp v4", acquireMsg(a4, b4, 1, 0, 0, unix.AF_INET), dataplane.Flow{Src: a4, Dst: b4, Protocol: 1}, false},
		{"udp v6", acquireMsg(a6, b6, 17, 5353, 53, unix.AF_INET6), dataplane.Flow{Src: a6, Dst: b6, Protocol: 17, SrcPort: 5353, DstPort: 53}, false},
		{"short", make([]byte, minAcquireLen-1), dataplane.Flow{}, true},
		{"unspec family", make([]byte, minAcquireLen), dataplane.Flow{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseAcquire(tc.b)
			var pe *ParseError
			if tc.err != errors.As(err, &pe) {
				t.Fatalf("err = %v", err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(append(usersa(1, []byte{1, 2, 3, 4}, unix.AF_INET), 1))
	f.Add(acquireMsg(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), 6, 1, 2, unix.AF_INET))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseExpire(b)
		_, _ = parseAcquire(b)
	})
}
