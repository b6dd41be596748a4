package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
	testdaemon "github.com/mifsec/mifsec/test/daemon"
	"github.com/mifsec/mifsec/test/topo"
)

// TestExamplesTunnel runs the example scripts that act on live SAs
// against an end user with a tunnel to a mifsec gateway (test/topo's
// namespaces): the end user is set up by register-interfaces.sh and
// create-connection.sh, then steer-flow.sh creates and updates a rule,
// migrate-ike-sa.sh moves the IKE SA between the links, and rekey.sh
// rekeys the Child SA and the IKE SA. Each effect is read back over the
// API, not just the script's exit status.
func TestExamplesTunnel(t *testing.T) {
	gc := grpcurl(t)
	tp := topo.Build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	psk := filepath.Join(t.TempDir(), "psk")
	os.WriteFile(psk, []byte("tunnel-example-psk-0123456789\n"), 0o600)

	gw := testdaemon.Start(t, tp.GW, "--dataplane", "userspace")
	mobike := true
	for _, err := range []error{
		func() error {
			_, err := gw.Client.Interfaces.CreateInterface(ctx, &mifsecv1.CreateInterfaceRequest{InterfaceId: "ran",
				Interface: &mifsecv1.Interface{Link: topo.RAN, AccessType: mifsecv1.AccessType_ACCESS_TYPE_RAN}})
			return err
		}(),
		func() error {
			_, err := gw.Client.Interfaces.CreateInterface(ctx, &mifsecv1.CreateInterfaceRequest{InterfaceId: "wlan",
				Interface: &mifsecv1.Interface{Link: topo.WLAN, AccessType: mifsecv1.AccessType_ACCESS_TYPE_WLAN}})
			return err
		}(),
		func() error {
			_, err := gw.Client.Secrets.CreateSecret(ctx, &mifsecv1.CreateSecretRequest{SecretId: "psk",
				Secret: &mifsecv1.Secret{Type: mifsecv1.SecretType_SECRET_TYPE_PSK, Data: &mifsecv1.Secret_Text{Text: "tunnel-example-psk-0123456789"}}})
			return err
		}(),
		func() error {
			_, err := gw.Client.Pools.CreatePool(ctx, &mifsecv1.CreatePoolRequest{PoolId: "ue",
				Pool: &mifsecv1.Pool{Ranges: []string{topo.VIPPool.String()}}})
			return err
		}(),
		func() error {
			auth := &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/psk"}}
			_, err := gw.Client.Connections.CreateConnection(ctx, &mifsecv1.CreateConnectionRequest{ConnectionId: "ues",
				Connection: &mifsecv1.Connection{Role: mifsecv1.Role_ROLE_RESPONDER, LocalId: "gw.example.net", RemoteId: "ue1@example.net",
					LocalAuth: auth, RemoteAuth: auth, Pool: "pools/ue", Mobike: &mobike,
					Dpd:      &mifsecv1.Dpd{Interval: durationpb.New(0)},
					Children: []*mifsecv1.Child{{Name: "all", LocalTs: []string{"0.0.0.0/0"}}}}})
			return err
		}(),
	} {
		if err != nil {
			t.Fatalf("gateway setup: %v", err)
		}
	}

	ue := testdaemon.Start(t, tp.UE, "--dataplane", "userspace")
	run := func(script string, args ...string) string {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		defer scancel()
		cmd := exec.CommandContext(sctx, filepath.Join(root, "deploy/examples", script), args...)
		cmd.Env = append(os.Environ(), "MIFSEC_SOCKET="+ue.Socket, "GRPCURL="+gc)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", script, args, err, out)
		}
		return string(out)
	}
	run("register-interfaces.sh", topo.RAN, topo.WLAN)
	run("create-connection.sh", topo.GWWLAN.String(), psk)
	if _, err := ue.Client.Connections.InitiateConnection(ctx, &mifsecv1.InitiateConnectionRequest{Name: "connections/gw"}); err != nil {
		t.Fatalf("initiate: %v", err)
	}
	ikeSA := func() *mifsecv1.IkeSa {
		t.Helper()
		r, err := ue.Client.SAs.ListIkeSas(ctx, &mifsecv1.ListIkeSasRequest{Parent: "connections/gw"})
		if err != nil || len(r.IkeSas) != 1 {
			t.Fatalf("IKE SAs: %v %v", r, err)
		}
		return r.IkeSas[0]
	}
	onLink := func(sa *mifsecv1.IkeSa, want string) {
		t.Helper()
		if !strings.HasPrefix(sa.LocalAddress, want+":") {
			t.Fatalf("IKE SA %s on %s↔%s, want local %s", sa.Name, sa.LocalAddress, sa.RemoteAddress, want)
		}
	}
	sa := ikeSA()
	onLink(sa, topo.UEWLAN.String())

	// Steering: the first run creates the rule, the second updates it.
	steering := mifsecv1.NewSteeringServiceClient(ue.Client.Conn())
	for _, c := range []struct{ to, standby, want string }{{"ran", "wlan", "CreateSteeringRule"}, {"wlan", "ran", "UpdateSteeringRule"}} {
		out := run("steer-flow.sh", "voice", "7301", c.to, c.standby)
		r, err := steering.GetSteeringRule(ctx, &mifsecv1.GetSteeringRuleRequest{Name: "steeringRules/voice"})
		if err != nil {
			t.Fatalf("after steer-flow.sh to %s: %v\n%s", c.to, err, out)
		}
		rule := r.SteeringRule
		if len(rule.Targets) != 2 || rule.Targets[0].GetInterface() != "interfaces/"+c.to ||
			rule.Match.GetDestinationPorts().GetFirst() != 7301 || rule.Match.GetProtocol() != 17 {
			t.Fatalf("rule after steer-flow.sh to %s: %v\n%s", c.to, rule, out)
		}
		if c.want == "UpdateSteeringRule" && !rule.UpdateTime.AsTime().After(rule.CreateTime.AsTime()) {
			t.Fatalf("the second run did not update the rule: %v", rule)
		}
	}

	// Migration: to RAN by connection id, back to WLAN by IKE SA name.
	out := run("migrate-ike-sa.sh", "gw", "ran")
	onLink(ikeSA(), topo.UERAN.String())
	if !strings.Contains(out, topo.UERAN.String()) {
		t.Errorf("migrate-ike-sa.sh printed no RAN address:\n%s", out)
	}
	run("migrate-ike-sa.sh", sa.Name, "wlan")
	onLink(ikeSA(), topo.UEWLAN.String())

	// Rekey: new Child SA SPIs, then a new IKE SA (a new name).
	kids := func(ike string) []*mifsecv1.ChildSa {
		r, err := ue.Client.SAs.ListChildSas(ctx, &mifsecv1.ListChildSasRequest{Parent: ike})
		if err != nil || len(r.ChildSas) == 0 {
			t.Fatalf("Child SAs of %s: %v %v", ike, r, err)
		}
		return r.ChildSas
	}
	before := kids(sa.Name)[0]
	run("rekey.sh", "gw", "child")
	if after := kids(sa.Name); len(after) != 1 || after[0].Name == before.Name {
		t.Fatalf("Child SAs after rekey.sh child: %v (before %s)", after, before.Name)
	}
	run("rekey.sh", "gw")
	if now := ikeSA(); now.Name == sa.Name {
		t.Fatalf("IKE SA still %s after rekey.sh", sa.Name)
	}
	if out, err := exec.Command(filepath.Join(root, "deploy/examples/rekey.sh"), "gw", "bogus").CombinedOutput(); err == nil {
		t.Errorf("rekey.sh accepted a bogus kind:\n%s", out)
	}
}
