package server

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

func TestSecretsPoolsConnections(t *testing.T) {
	f := newFixture(t, 0)
	sec := mifsecv1.NewSecretServiceClient(f.conn)
	pl := mifsecv1.NewPoolServiceClient(f.conn)
	cn := mifsecv1.NewConnectionServiceClient(f.conn)

	const psk = "super-secret-psk-value"
	r, err := sec.CreateSecret(ctx(t), &mifsecv1.CreateSecretRequest{SecretId: "psk",
		Secret: &mifsecv1.Secret{Type: mifsecv1.SecretType_SECRET_TYPE_PSK, Data: &mifsecv1.Secret_Text{Text: psk}}})
	if err != nil {
		t.Fatal(err)
	}
	// The value is never returned by any RPC.
	g, _ := sec.GetSecret(ctx(t), &mifsecv1.GetSecretRequest{Name: "secrets/psk"})
	l, _ := sec.ListSecrets(ctx(t), &mifsecv1.ListSecretsRequest{})
	for _, m := range []string{protojson.Format(r), protojson.Format(g), protojson.Format(l)} {
		if strings.Contains(m, psk) || strings.Contains(m, "c3VwZXItc2VjcmV0") {
			t.Fatalf("secret value returned: %s", m)
		}
	}
	if _, err := pl.CreatePool(ctx(t), &mifsecv1.CreatePoolRequest{PoolId: "ue", Pool: &mifsecv1.Pool{Ranges: []string{"10.45.0.0/24"}, DnsServers: []string{"192.0.2.53"}}}); err != nil {
		t.Fatal(err)
	}
	_, err = pl.CreatePool(ctx(t), &mifsecv1.CreatePoolRequest{PoolId: "dup", Pool: &mifsecv1.Pool{Ranges: []string{"10.45.0.128/25"}}})
	wantErr(t, err, codes.InvalidArgument, "OVERLAPPING_POOL_RANGES", "pool.ranges[0]")
	_, err = pl.CreatePool(ctx(t), &mifsecv1.CreatePoolRequest{PoolId: "dns", Pool: &mifsecv1.Pool{Ranges: []string{"10.46.0.0/24"}, DnsServers: []string{"nope"}}})
	wantErr(t, err, codes.InvalidArgument, "INVALID_ADDRESS", "pool.dns_servers[0]")

	conn := func() *mifsecv1.Connection {
		return &mifsecv1.Connection{Role: mifsecv1.Role_ROLE_RESPONDER, LocalId: "@gw.example", RemoteId: "%any",
			LocalAuth:  &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/psk"}},
			RemoteAuth: &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/psk"}},
			Pool:       "pools/ue",
			Children:   []*mifsecv1.Child{{Name: "net", LocalTs: []string{"192.0.2.0/24"}, RemoteTs: []string{"0.0.0.0/0"}}}}
	}
	c, err := cn.CreateConnection(ctx(t), &mifsecv1.CreateConnectionRequest{ConnectionId: "gw", Connection: conn()})
	if err != nil || c.Connection.State != mifsecv1.ConnectionState_CONNECTION_STATE_IDLE || c.Connection.Children[0].Mode != mifsecv1.IpsecMode_IPSEC_MODE_TUNNEL {
		t.Fatalf("%v %v", c, err)
	}
	bad := []struct {
		name   string
		mod    func(*mifsecv1.Connection)
		reason string
		field  string
	}{
		{"bad proposal string", func(c *mifsecv1.Connection) { c.IkeProposals = []string{"aes256gcm16-prfsha256-x25519-bogus"} }, "INVALID_PROPOSAL", "connection.ike_proposals"},
		{"unknown secret", func(c *mifsecv1.Connection) {
			c.RemoteAuth = &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/nope"}}
		}, "SECRET_NOT_FOUND", "connection.remote_auth.psk_secret"},
		{"selectors of the wrong family", func(c *mifsecv1.Connection) { c.Children[0].RemoteTs = []string{"::/0"} }, "SELECTOR_FAMILY_MISMATCH", "connection.children[0].remote_ts"},
		{"bad mode", func(c *mifsecv1.Connection) { c.Children[0].Mode = 9 }, "INVALID_MODE", "connection.children[0].mode"},
		{"bad pool name", func(c *mifsecv1.Connection) { c.Pool = "ue" }, "INVALID_NAME", "connection.pool"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			c := conn()
			b.mod(c)
			_, err := cn.CreateConnection(ctx(t), &mifsecv1.CreateConnectionRequest{ConnectionId: "x", Connection: c})
			wantErr(t, err, codes.InvalidArgument, b.reason, b.field)
		})
	}
	_, err = sec.DeleteSecret(ctx(t), &mifsecv1.DeleteSecretRequest{Name: "secrets/psk"})
	wantErr(t, err, codes.FailedPrecondition, "SECRET_IN_USE", "name")
	if _, err := cn.DeleteConnection(ctx(t), &mifsecv1.DeleteConnectionRequest{Name: "connections/gw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sec.DeleteSecret(ctx(t), &mifsecv1.DeleteSecretRequest{Name: "secrets/psk"}); err != nil {
		t.Fatal(err)
	}
}
