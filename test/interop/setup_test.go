// Package interop runs mifsecd against strongSwan 5.9 (kernel-libipsec) and
// against itself in the issue topology (test/topo): an end user (ue) with a
// RAN and a WLAN link to a gateway (gw), a server (srv) behind the gateway.
package interop

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
	"github.com/mifsec/mifsec/test/daemon"
	"github.com/mifsec/mifsec/test/strongswan"
	"github.com/mifsec/mifsec/test/strongswan/vici"
	"github.com/mifsec/mifsec/test/topo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	psk     = "interop-psk-0123456789"
	gwID    = "gw.example.net"
	ueID    = "ue1@example.net"
	ikeP    = "aes256gcm16-prfsha256-x25519"
	espP    = "aes256gcm16"
	timeout = 60 * time.Second
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// swGateway starts strongSwan as the gateway with a PSK and a pool.
func swGateway(t testing.TB, tp *topo.Topology, mod func(*strongswan.Config)) *strongswan.Charon {
	cfg := strongswan.Config{
		Name:              "gw",
		RetransmitTimeout: time.Second, RetransmitTries: 3,
		Connections: []strongswan.Connection{{
			Name: "ue", LocalAddrs: []string{topo.GWRAN.String(), topo.GWWLAN.String()},
			Proposals: []string{ikeP, "aes128-sha256-modp2048"}, Pools: []string{"ue_pool"}, Unique: "never",
			Local:  strongswan.Auth{Auth: "psk", ID: gwID},
			Remote: strongswan.Auth{Auth: "psk", ID: ueID},
			Children: []strongswan.Child{{Name: "net", LocalTS: []string{topo.LANNet.String()},
				ESPProposals: []string{espP, "aes128gcm16"}}},
		}},
		Pools:   []strongswan.Pool{{Name: "ue_pool", Addrs: topo.VIPPool.String()}},
		Secrets: []strongswan.PSK{{IDs: []string{gwID, ueID}, Secret: vici.Secret(psk)}},
	}
	if mod != nil {
		mod(&cfg)
	}
	return strongswan.Start(t, tp.GW, cfg)
}

// mifsecUE starts mifsecd in the ue namespace with both links registered,
// the PSK and a connection to the gateway's RAN address.
func mifsecUE(t testing.TB, tp *topo.Topology, mod func(*mifsecv1.Connection)) *daemon.Daemon {
	return mifsecUEKey(t, tp, nil, mod)
}

// mifsecUEKey is mifsecUE that also stores keyPEM (when not nil) as the
// private key secret "secrets/key".
func mifsecUEKey(t testing.TB, tp *topo.Topology, keyPEM []byte, mod func(*mifsecv1.Connection), args ...string) *daemon.Daemon {
	d := mifsecNode(t, tp.UE, keyPEM, args...)
	conn := &mifsecv1.Connection{
		Role: mifsecv1.Role_ROLE_INITIATOR, LocalId: ueID, RemoteId: "@" + gwID,
		LocalAuth:    &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/psk"}},
		RemoteAuth:   &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/psk"}},
		IkeProposals: []string{ikeP}, EspProposals: []string{espP},
		RemoteAddresses: []string{topo.GWRAN.String()}, LocalInterfaces: []string{"interfaces/ran"},
		RequestVirtualIp4: true,
		Dpd:               &mifsecv1.Dpd{Interval: durationpb.New(0)},
		Children:          []*mifsecv1.Child{{Name: "net", RemoteTs: []string{topo.LANNet.String()}}},
	}
	if mod != nil {
		mod(conn)
	}
	if _, err := d.Client.Connections.CreateConnection(ctxT(t), &mifsecv1.CreateConnectionRequest{ConnectionId: "gw", Connection: conn}); err != nil {
		t.Fatal(err)
	}
	return d
}

// mifsecNode starts mifsecd (userspace data plane) in ns with its RAN and
// WLAN links registered (the same link names on both ends), the PSK as
// "secrets/psk" and, when keyPEM is not nil, a private key as "secrets/key".
func mifsecNode(t testing.TB, ns *topo.Netns, keyPEM []byte, args ...string) *daemon.Daemon {
	d := daemon.Start(t, ns, append([]string{"--dataplane", "userspace"}, args...)...)
	ctx := ctxT(t)
	c := d.Client
	for _, i := range []struct {
		id, link string
		at       mifsecv1.AccessType
		prio     uint32
	}{{"ran", topo.RAN, mifsecv1.AccessType_ACCESS_TYPE_RAN, 10}, {"wlan", topo.WLAN, mifsecv1.AccessType_ACCESS_TYPE_WLAN, 20}} {
		if _, err := c.Interfaces.CreateInterface(ctx, &mifsecv1.CreateInterfaceRequest{InterfaceId: i.id,
			Interface: &mifsecv1.Interface{Link: i.link, AccessType: i.at, Priority: i.prio}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Secrets.CreateSecret(ctx, &mifsecv1.CreateSecretRequest{SecretId: "psk",
		Secret: &mifsecv1.Secret{Type: mifsecv1.SecretType_SECRET_TYPE_PSK, Data: &mifsecv1.Secret_Text{Text: psk}}}); err != nil {
		t.Fatal(err)
	}
	if keyPEM != nil {
		if _, err := c.Secrets.CreateSecret(ctx, &mifsecv1.CreateSecretRequest{SecretId: "key",
			Secret: &mifsecv1.Secret{Type: mifsecv1.SecretType_SECRET_TYPE_PRIVATE_KEY, Data: &mifsecv1.Secret_Value{Value: keyPEM}}}); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// mifsecGW starts mifsecd as the gateway: the pool "ue" over topo.VIPPool
// and a responder connection "ues" leasing from it, with the LAN behind.
func mifsecGW(t testing.TB, tp *topo.Topology, keyPEM []byte, mod func(*mifsecv1.Connection), args ...string) *daemon.Daemon {
	d := mifsecNode(t, tp.GW, keyPEM, args...)
	ctx := ctxT(t)
	if _, err := d.Client.Pools.CreatePool(ctx, &mifsecv1.CreatePoolRequest{PoolId: "ue",
		Pool: &mifsecv1.Pool{Ranges: []string{topo.VIPPool.String()}}}); err != nil {
		t.Fatal(err)
	}
	conn := &mifsecv1.Connection{
		Role: mifsecv1.Role_ROLE_RESPONDER, LocalId: gwID, RemoteId: ueID,
		LocalAuth:    &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/psk"}},
		RemoteAuth:   &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/psk"}},
		IkeProposals: []string{ikeP, "aes128-sha256-modp2048"}, EspProposals: []string{espP, "aes128gcm16"},
		Pool:     "pools/ue",
		Dpd:      &mifsecv1.Dpd{Interval: durationpb.New(0)},
		Children: []*mifsecv1.Child{{Name: "net", LocalTs: []string{topo.LANNet.String()}}},
	}
	if mod != nil {
		mod(conn)
	}
	if _, err := d.Client.Connections.CreateConnection(ctx, &mifsecv1.CreateConnectionRequest{ConnectionId: "ues", Connection: conn}); err != nil {
		t.Fatal(err)
	}
	return d
}

// swUE starts strongSwan as the end user: connection "gw" to the
// gateway's RAN address asking for a virtual IP, child "net" to the LAN,
// started by the test (vici initiate).
func swUE(t testing.TB, tp *topo.Topology, mod func(*strongswan.Config)) *strongswan.Charon {
	cfg := strongswan.Config{
		Name:              "ue",
		RetransmitTimeout: time.Second, RetransmitTries: 6,
		Connections: []strongswan.Connection{{
			Name: "gw", LocalAddrs: []string{topo.UERAN.String()}, RemoteAddrs: []string{topo.GWRAN.String()},
			Proposals: []string{ikeP}, VIPs: []string{"0.0.0.0"},
			Local:  strongswan.Auth{Auth: "psk", ID: ueID},
			Remote: strongswan.Auth{Auth: "psk", ID: gwID},
			Children: []strongswan.Child{{Name: "net", RemoteTS: []string{topo.LANNet.String()},
				ESPProposals: []string{espP}, StartAction: "none"}},
		}},
		Secrets: []strongswan.PSK{{IDs: []string{gwID, ueID}, Secret: vici.Secret(psk)}},
	}
	if mod != nil {
		mod(&cfg)
	}
	return strongswan.Start(t, tp.UE, cfg)
}

// ikeSA returns the one IKE SA of a connection.
func ikeSA(t testing.TB, d *daemon.Daemon, conn string) *mifsecv1.IkeSa {
	t.Helper()
	r, err := d.Client.SAs.ListIkeSas(ctxT(t), &mifsecv1.ListIkeSasRequest{Parent: "connections/" + conn})
	if err != nil || len(r.IkeSas) != 1 {
		t.Fatalf("IKE SAs of %s: %v %v", conn, r, err)
	}
	return r.IkeSas[0]
}

func childSAs(t testing.TB, d *daemon.Daemon, ike string) []*mifsecv1.ChildSa {
	t.Helper()
	r, err := d.Client.SAs.ListChildSas(ctxT(t), &mifsecv1.ListChildSasRequest{Parent: ike})
	if err != nil {
		t.Fatal(err)
	}
	return r.ChildSas
}

func vip(t testing.TB, sa *mifsecv1.IkeSa) netip.Addr {
	t.Helper()
	if len(sa.VirtualIps) != 1 {
		t.Fatalf("virtual IPs %v", sa.VirtualIps)
	}
	return netip.MustParseAddr(sa.VirtualIps[0])
}
