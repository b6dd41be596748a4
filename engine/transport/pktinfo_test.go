package transport

import (
	"bytes"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPktinfoDst(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.7")
	v6 := netip.MustParseAddr("2001:db8::7")
	in4 := unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: 3, Addr: v4.As4(), Spec_dst: [4]byte{10, 0, 0, 1}})
	in6 := unix.PktInfo6(&unix.Inet6Pktinfo{Ifindex: 3, Addr: v6.As16()})
	rights := unix.UnixRights(0) // another level and type, to be skipped
	for _, tc := range []struct {
		name string
		oob  []byte
		want netip.Addr
	}{
		{"IPv4", in4, v4},
		{"IPv6", in6, v6},
		{"after another message", append(append([]byte(nil), rights...), in4...), v4},
		{"empty", nil, netip.Addr{}},
		{"truncated header", in4[:4], netip.Addr{}},
		{"truncated data", in4[:len(in4)-8], netip.Addr{}},
		{"other messages only", rights, netip.Addr{}},
	} {
		got, ok := pktinfoDst(tc.oob)
		if ok != tc.want.IsValid() || got != tc.want {
			t.Errorf("%s: pktinfoDst = %v, %v; want %v", tc.name, got, ok, tc.want)
		}
	}
}

func TestPktinfoSrc(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.7")
	v6 := netip.MustParseAddr("2001:db8::7")
	for _, tc := range []struct {
		src  netip.Addr
		want []byte
	}{
		{v4, unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: v4.As4()})},
		{v6, unix.PktInfo6(&unix.Inet6Pktinfo{Addr: v6.As16()})},
	} {
		buf := bytes.Repeat([]byte{0xff}, pktinfoSpace) // leftovers of a previous send
		if got := pktinfoSrc(buf, tc.src); !bytes.Equal(got, tc.want) {
			t.Errorf("pktinfoSrc(%v) = %x, want %x", tc.src, got, tc.want)
		}
	}
}
