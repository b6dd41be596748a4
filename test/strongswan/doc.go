// Package strongswan is the project's strongSwan interop harness: it runs a
// real strongSwan 5.9 charon as the peer of mifsecd in a network namespace
// built by package topo, configures it from Go structs, and drives and
// observes it through the Go vici client in package vici.
//
// Each Start gives charon its own directory (a short os.MkdirTemp path):
// strongswan.conf (explicit plugin list with kernel-libipsec before
// kernel-netlink, since this machine has no kernel ESP; routes in table 220;
// install_virtual_ip; retransmission settings; make_before_break; a filelog
// with per-subsystem levels), swanctl/swanctl.conf with the credential
// directories (x509ca, x509, ecdsa, ...), the vici socket, and run/, bound
// over /run inside the namespace's private mount namespace because charon's
// pid file is compiled in as /var/run/charon.pid. charon is started with
// STRONGSWAN_CONF pointing at that file, the socket is polled until vici
// answers, and swanctl --load-all loads the configuration. Cleanup stops
// charon (SIGTERM, then SIGKILL) and logs its log when the test failed.
//
// Behaviour of this strongSwan that a peer must expect (see the tests):
// kernel-libipsec forces UDP encapsulation, so charon fakes NAT-D and both
// ends float to 4500 and use ESP-in-UDP (RFC 3948); the TUN device is
// ipsec0 with MTU 1400; after a MOBIKE address update charon rekeys the
// CHILD_SA because libipsec cannot update SA addresses; certificates are
// sent only when asked (send_cert = ifasked), so set SendCertReq.
//
// How the interop tests of mifsecd use it (strongSwan as the gateway,
// mifsecd as the end user):
//
//	func TestInteropPSK(t *testing.T) {
//		tp := topo.Build(t) // ue, gw, srv; skips unless root
//		gw := strongswan.Start(t, tp.GW, strongswan.Config{
//			Name: "gw",
//			Connections: []strongswan.Connection{{
//				Name: "ue", LocalAddrs: []string{topo.GWRAN.String(), topo.GWWLAN.String()},
//				Proposals: []string{"aes256gcm16-prfsha256-x25519"}, Pools: []string{"ue_pool"},
//				Unique: "never", // one IKE SA per path (PROTOCOL.md P5)
//				Local:  strongswan.Auth{Auth: "psk", ID: "gw.example.net"},
//				Remote: strongswan.Auth{Auth: "psk", ID: "ue1@example.net"},
//				Children: []strongswan.Child{{Name: "net", LocalTS: []string{topo.LANNet.String()},
//					ESPProposals: []string{"aes256gcm16-x25519", "aes256gcm16"}}},
//			}},
//			Pools:   []strongswan.Pool{{Name: "ue_pool", Addrs: topo.VIPPool.String()}},
//			Secrets: []strongswan.PSK{{IDs: []string{"gw.example.net", "ue1@example.net"}, Secret: psk}},
//		})
//		ev, _ := gw.Subscribe(ctx, vici.EventIKEUpDown, vici.EventChildUpDown)
//
//		// mifsecd in the ue namespace, configured through its gRPC API.
//		d := tp.UE.Command(ctx, mifsecd, "--socket", sock, "--state-dir", dir)
//		// ... create interfaces ran0/wlan0 and a connection to 198.51.100.1, Initiate ...
//
//		ev.Wait(ctx, func(e vici.Event) bool { up, _, _ := e.UpDown(); return e.Name == vici.EventChildUpDown && up })
//		sas, _ := gw.Vici().ListSAs(ctx, "ue") // state, hosts, SPIs, counters, TS
//		s, _ := tp.UE.Ping(ctx, topo.PingOptions{Src: vip, Dst: topo.SRV, Count: 100, Rate: 100})
//		// s.Lost == 0; compare sas[0].Children[0].SPIIn with what mifsecd reports;
//		// gw.Vici().Rekey(ctx, vici.Rekey{Child: "net"}) for a peer-initiated rekey;
//		// tp.UE.AddrDel(ctx, topo.RAN, ...) for a MOBIKE move; tp.GW.Blackhole for DPD.
//	}
//
// With the roles swapped (mifsecd as the gateway in tp.GW), start a
// strongSwan end user in tp.UE with VIPs: []string{"0.0.0.0"} and
// StartAction "none", and call ue.Vici().Initiate(ctx, "net", "gw").
//
// Everything here is test support: it must not be imported by the engine,
// the server or the commands.
package strongswan
