package server

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/mifsec/mifsec/engine"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// steeringFixture has interfaces wlan and ran and an initiator connection
// "gw" that may use both.
func steeringFixture(t *testing.T) (*fixture, mifsecv1.SteeringServiceClient) {
	f := newFixture(t, 0)
	f.create(t, "wlan", "wlan0", mifsecv1.AccessType_ACCESS_TYPE_WLAN)
	f.create(t, "ran", "rmnet0", mifsecv1.AccessType_ACCESS_TYPE_RAN)
	if _, err := f.eng.CreateSecret(ctx(t), "psk", engine.SecretPSK, []byte("a-long-shared-secret")); err != nil {
		t.Fatal(err)
	}
	cn := mifsecv1.NewConnectionServiceClient(f.conn)
	if _, err := cn.CreateConnection(ctx(t), &mifsecv1.CreateConnectionRequest{ConnectionId: "gw", Connection: &mifsecv1.Connection{
		Role: mifsecv1.Role_ROLE_INITIATOR, RemoteAddresses: []string{"203.0.113.1"}, Multipath: true,
		LocalInterfaces: []string{"interfaces/wlan", "interfaces/ran"},
		LocalAuth:       &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/psk"}},
		RemoteAuth:      &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/psk"}}}}); err != nil {
		t.Fatal(err)
	}
	return f, mifsecv1.NewSteeringServiceClient(f.conn)
}

func TestSteeringRuleCRUD(t *testing.T) {
	f, st := steeringFixture(t)
	sub, err := f.ev.Watch(ctx(t), &mifsecv1.WatchRequest{Categories: []mifsecv1.EventCategory{mifsecv1.EventCategory_EVENT_CATEGORY_STEERING}})
	if err != nil {
		t.Fatal(err)
	}
	// The subscription exists once its snapshot has ended.
	recvUntil(t, sub, mifsecv1.EventType_EVENT_TYPE_END_OF_SNAPSHOT)
	rule := &mifsecv1.SteeringRule{Mode: mifsecv1.SteeringMode_STEERING_MODE_LOAD_BALANCE, Precedence: 10,
		ProbeInterval: durationpb.New(200 * time.Millisecond),
		Match: &mifsecv1.FlowMatch{DestinationPrefixes: []string{"198.18.0.0/24"}, Protocol: 6,
			DestinationPorts: &mifsecv1.PortRange{First: 443}, Dscp: []uint32{46}, Connection: "connections/gw"},
		Targets: []*mifsecv1.SteeringTarget{
			{Target: &mifsecv1.SteeringTarget_Interface{Interface: "interfaces/wlan"}, Weight: 3},
			{Target: &mifsecv1.SteeringTarget_AccessType{AccessType: mifsecv1.AccessType_ACCESS_TYPE_RAN}, Weight: 1}}}
	c, err := st.CreateSteeringRule(ctx(t), &mifsecv1.CreateSteeringRuleRequest{SteeringRuleId: "web", SteeringRule: rule})
	if err != nil {
		t.Fatal(err)
	}
	got := c.SteeringRule
	if got.Name != "steeringRules/web" || got.Match.DestinationPorts.Last != 443 || got.Match.Connection != "connections/gw" ||
		got.Targets[0].GetInterface() != "interfaces/wlan" || got.Targets[1].GetAccessType() != mifsecv1.AccessType_ACCESS_TYPE_RAN ||
		got.ProbeInterval.AsDuration() != 200*time.Millisecond || got.CreateTime == nil || len(got.ActivePaths) != 0 {
		t.Fatalf("created %v", got)
	}
	for {
		r, err := sub.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.Event.Type == mifsecv1.EventType_EVENT_TYPE_STEERING_RULE_CREATED {
			if r.Event.GetSteeringRule().GetName() != "steeringRules/web" {
				t.Fatalf("event %v", r.Event)
			}
			break
		}
	}
	u, err := st.UpdateSteeringRule(ctx(t), &mifsecv1.UpdateSteeringRuleRequest{
		SteeringRule: &mifsecv1.SteeringRule{Name: "steeringRules/web", Precedence: 5, Mode: mifsecv1.SteeringMode_STEERING_MODE_PRIORITY},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"precedence"}}})
	if err != nil || u.SteeringRule.Precedence != 5 || u.SteeringRule.Mode != mifsecv1.SteeringMode_STEERING_MODE_LOAD_BALANCE {
		t.Fatalf("update: %v %v", u, err)
	}
	g, err := st.GetSteeringRule(ctx(t), &mifsecv1.GetSteeringRuleRequest{Name: "steeringRules/web"})
	if err != nil || g.SteeringRule.Precedence != 5 {
		t.Fatalf("get: %v %v", g, err)
	}
	if _, err := st.CreateSteeringRule(ctx(t), &mifsecv1.CreateSteeringRuleRequest{SteeringRuleId: "voice", SteeringRule: &mifsecv1.SteeringRule{
		Mode: mifsecv1.SteeringMode_STEERING_MODE_SMALLEST_DELAY}}); err != nil {
		t.Fatal(err)
	}
	l1, err := st.ListSteeringRules(ctx(t), &mifsecv1.ListSteeringRulesRequest{PageSize: 1})
	if err != nil || len(l1.SteeringRules) != 1 || l1.NextPageToken == "" {
		t.Fatalf("list: %v %v", l1, err)
	}
	l2, err := st.ListSteeringRules(ctx(t), &mifsecv1.ListSteeringRulesRequest{PageSize: 1, PageToken: l1.NextPageToken})
	if err != nil || len(l2.SteeringRules) != 1 || l2.SteeringRules[0].Name != "steeringRules/web" || l2.NextPageToken != "" {
		t.Fatalf("page 2: %v %v", l2, err)
	}
	if _, err := st.DeleteSteeringRule(ctx(t), &mifsecv1.DeleteSteeringRuleRequest{Name: "steeringRules/voice"}); err != nil {
		t.Fatal(err)
	}
	_, err = st.GetSteeringRule(ctx(t), &mifsecv1.GetSteeringRuleRequest{Name: "steeringRules/voice"})
	wantErr(t, err, codes.NotFound, engine.ReasonSteeringNotFound, "name")
	_, err = st.CreateSteeringRule(ctx(t), &mifsecv1.CreateSteeringRuleRequest{SteeringRuleId: "web", SteeringRule: rule})
	wantErr(t, err, codes.AlreadyExists, engine.ReasonSteeringExists, "steering_rule_id")
}

func TestSteeringRuleBadInput(t *testing.T) {
	_, st := steeringFixture(t)
	lb := mifsecv1.SteeringMode_STEERING_MODE_LOAD_BALANCE
	as := mifsecv1.SteeringMode_STEERING_MODE_ACTIVE_STANDBY
	iface := func(n string, w uint32) *mifsecv1.SteeringTarget {
		return &mifsecv1.SteeringTarget{Target: &mifsecv1.SteeringTarget_Interface{Interface: n}, Weight: w}
	}
	tests := []struct {
		name   string
		id     string
		rule   *mifsecv1.SteeringRule
		reason string
		field  string
	}{
		{"no rule", "r", nil, "MISSING_FIELD", "steering_rule"},
		{"bad id", "R_1", &mifsecv1.SteeringRule{Mode: lb}, engine.ReasonInvalidID, "steering_rule_id"},
		{"no mode", "r", &mifsecv1.SteeringRule{}, "INVALID_STEERING_MODE", "steering_rule.mode"},
		{"unknown mode", "r", &mifsecv1.SteeringRule{Mode: 99}, "INVALID_STEERING_MODE", "steering_rule.mode"},
		{"bad prefix", "r", &mifsecv1.SteeringRule{Mode: lb, Match: &mifsecv1.FlowMatch{SourcePrefixes: []string{"10.0.0.0/8", "nope"}}}, "INVALID_PREFIX", "steering_rule.match.source_prefixes[1]"},
		{"bad protocol", "r", &mifsecv1.SteeringRule{Mode: lb, Match: &mifsecv1.FlowMatch{Protocol: 300}}, "INVALID_PROTOCOL", "steering_rule.match.protocol"},
		{"ports without protocol", "r", &mifsecv1.SteeringRule{Mode: lb, Match: &mifsecv1.FlowMatch{DestinationPorts: &mifsecv1.PortRange{First: 80}}}, "PORTS_WITHOUT_PROTOCOL", "steering_rule.match.destination_ports"},
		{"reversed ports", "r", &mifsecv1.SteeringRule{Mode: lb, Match: &mifsecv1.FlowMatch{Protocol: 17, SourcePorts: &mifsecv1.PortRange{First: 90, Last: 80}}}, "INVALID_PORT_RANGE", "steering_rule.match.source_ports"},
		{"dscp", "r", &mifsecv1.SteeringRule{Mode: lb, Match: &mifsecv1.FlowMatch{Dscp: []uint32{64}}}, "INVALID_DSCP", "steering_rule.match.dscp[0]"},
		{"connection name", "r", &mifsecv1.SteeringRule{Mode: lb, Match: &mifsecv1.FlowMatch{Connection: "gw"}}, "INVALID_NAME", "steering_rule.match.connection"},
		{"unknown connection", "r", &mifsecv1.SteeringRule{Mode: lb, Match: &mifsecv1.FlowMatch{Connection: "connections/nope"}}, "CONNECTION_NOT_FOUND", "steering_rule.match.connection"},
		{"interface name", "r", &mifsecv1.SteeringRule{Mode: lb, Targets: []*mifsecv1.SteeringTarget{iface("wlan", 1)}}, "INVALID_NAME", "steering_rule.targets[0].interface"},
		{"unknown interface", "r", &mifsecv1.SteeringRule{Mode: lb, Targets: []*mifsecv1.SteeringTarget{iface("interfaces/wlan", 1), iface("interfaces/eth9", 1)}}, engine.ReasonInterfaceNotFound, "steering_rule.targets[1].interface"},
		{"access type", "r", &mifsecv1.SteeringRule{Mode: lb, Targets: []*mifsecv1.SteeringTarget{{Target: &mifsecv1.SteeringTarget_AccessType{}, Weight: 1}}}, engine.ReasonInvalidAccessType, "steering_rule.targets[0].access_type"},
		{"empty target", "r", &mifsecv1.SteeringRule{Mode: as, Targets: []*mifsecv1.SteeringTarget{{}}}, "INVALID_TARGET", "steering_rule.targets[0]"},
		{"no weight", "r", &mifsecv1.SteeringRule{Mode: lb, Targets: []*mifsecv1.SteeringTarget{iface("interfaces/wlan", 0)}}, "INVALID_WEIGHT", "steering_rule.targets[0].weight"},
		{"weight outside LB", "r", &mifsecv1.SteeringRule{Mode: as, Targets: []*mifsecv1.SteeringTarget{iface("interfaces/wlan", 2)}}, "INVALID_WEIGHT", "steering_rule.targets[0].weight"},
		{"duplicate target", "r", &mifsecv1.SteeringRule{Mode: as, Targets: []*mifsecv1.SteeringTarget{iface("interfaces/wlan", 0), iface("interfaces/wlan", 0)}}, "DUPLICATE_TARGET", "steering_rule.targets[1]"},
		{"standby without targets", "r", &mifsecv1.SteeringRule{Mode: as}, "MISSING_FIELD", "steering_rule.targets"},
		{"probe interval", "r", &mifsecv1.SteeringRule{Mode: lb, ProbeInterval: durationpb.New(time.Millisecond)}, "INVALID_PROBE_INTERVAL", "steering_rule.probe_interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := st.CreateSteeringRule(ctx(t), &mifsecv1.CreateSteeringRuleRequest{SteeringRuleId: tc.id, SteeringRule: tc.rule})
			wantErr(t, err, codes.InvalidArgument, tc.reason, tc.field)
		})
	}
	_, err := st.UpdateSteeringRule(ctx(t), &mifsecv1.UpdateSteeringRuleRequest{SteeringRule: &mifsecv1.SteeringRule{Name: "steeringRules/r"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}})
	wantErr(t, err, codes.InvalidArgument, engine.ReasonInvalidFieldMask, "update_mask")
	_, err = st.UpdateSteeringRule(ctx(t), &mifsecv1.UpdateSteeringRuleRequest{SteeringRule: &mifsecv1.SteeringRule{Name: "steeringRules/r"}})
	wantErr(t, err, codes.NotFound, engine.ReasonSteeringNotFound, "steering_rule.name")
	_, err = st.GetSteeringRule(ctx(t), &mifsecv1.GetSteeringRuleRequest{Name: "rules/r"})
	wantErr(t, err, codes.InvalidArgument, "INVALID_NAME", "name")
	_, err = st.DeleteSteeringRule(ctx(t), &mifsecv1.DeleteSteeringRuleRequest{Name: "steeringRules/r"})
	wantErr(t, err, codes.NotFound, engine.ReasonSteeringNotFound, "name")
}

func TestListPathsAndMigrateBadInput(t *testing.T) {
	f, _ := steeringFixture(t)
	cn := mifsecv1.NewConnectionServiceClient(f.conn)
	sas := mifsecv1.NewSecurityAssociationServiceClient(f.conn)
	l, err := cn.ListPaths(ctx(t), &mifsecv1.ListPathsRequest{Parent: "connections/gw"})
	if err != nil || len(l.Paths) != 2 {
		t.Fatalf("paths: %v %v", l, err)
	}
	// Candidates exist before any IKE SA: one per allowed interface.
	p := l.Paths[0]
	if p.Name != "connections/gw/paths/ran-203-0-113-1" || p.Interface != "interfaces/ran" || p.State != mifsecv1.PathState_PATH_STATE_DOWN ||
		p.DownReason != "no_ike_sa" || p.RemoteAddress != "203.0.113.1:0" {
		t.Fatalf("path %v", p)
	}
	all, err := cn.ListPaths(ctx(t), &mifsecv1.ListPathsRequest{Parent: "connections/-", PageSize: 1})
	if err != nil || len(all.Paths) != 1 || all.NextPageToken == "" {
		t.Fatalf("all: %v %v", all, err)
	}
	_, err = cn.ListPaths(ctx(t), &mifsecv1.ListPathsRequest{Parent: "gw"})
	wantErr(t, err, codes.InvalidArgument, "INVALID_NAME", "parent")
	_, err = cn.ListPaths(ctx(t), &mifsecv1.ListPathsRequest{Parent: "connections/nope"})
	wantErr(t, err, codes.NotFound, "CONNECTION_NOT_FOUND", "parent")
	_, err = cn.ListPaths(ctx(t), &mifsecv1.ListPathsRequest{Parent: "connections/gw", PageToken: "forged"})
	wantErr(t, err, codes.InvalidArgument, "INVALID_PAGE_TOKEN", "page_token")

	const ike = "connections/gw/ikeSas/0123456789abcdef"
	for _, tc := range []struct {
		req    *mifsecv1.MigrateIkeSaRequest
		code   codes.Code
		reason string
		field  string
	}{
		{&mifsecv1.MigrateIkeSaRequest{Name: "gw"}, codes.InvalidArgument, "INVALID_NAME", "name"},
		{&mifsecv1.MigrateIkeSaRequest{Name: ike}, codes.InvalidArgument, "MISSING_FIELD", "target"},
		{&mifsecv1.MigrateIkeSaRequest{Name: ike, Target: &mifsecv1.MigrateIkeSaRequest_Interface{Interface: "wlan"}}, codes.InvalidArgument, "INVALID_NAME", "interface"},
		{&mifsecv1.MigrateIkeSaRequest{Name: ike, Target: &mifsecv1.MigrateIkeSaRequest_Path{Path: "paths/x"}}, codes.InvalidArgument, "INVALID_NAME", "path"},
		{&mifsecv1.MigrateIkeSaRequest{Name: ike, Target: &mifsecv1.MigrateIkeSaRequest_Path{Path: "connections/other/paths/x"}}, codes.InvalidArgument, "PATH_OF_ANOTHER_CONNECTION", "path"},
		{&mifsecv1.MigrateIkeSaRequest{Name: ike, Target: &mifsecv1.MigrateIkeSaRequest_Interface{Interface: "interfaces/ran"}}, codes.NotFound, "IKE_SA_NOT_FOUND", "name"},
	} {
		_, err := sas.MigrateIkeSa(ctx(t), tc.req)
		wantErr(t, err, tc.code, tc.reason, tc.field)
	}
}
