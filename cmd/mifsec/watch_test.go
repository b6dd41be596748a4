package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// Paths of connection home; homeIKE is in sa_test.go.
const (
	homeWLAN = "connections/home/paths/wlan-1"
	homeRAN  = "connections/home/paths/ran-1"
)

var (
	homeSA = &mifsecv1.IkeSa{Name: homeIKE, State: mifsecv1.IkeSaState_IKE_SA_STATE_ESTABLISHED,
		LocalAddress: "198.51.100.7", RemoteAddress: "203.0.113.1"}
	voiceRule = &mifsecv1.SteeringRule{
		Name: "steeringRules/voice", Mode: mifsecv1.SteeringMode_STEERING_MODE_ACTIVE_STANDBY, Precedence: 10,
		Match: &mifsecv1.FlowMatch{DestinationPrefixes: []string{"198.51.100.0/24", "2001:db8::/32"}, Protocol: 17,
			DestinationPorts: &mifsecv1.PortRange{First: 5060, Last: 5061}, Dscp: []uint32{46}, Connection: "connections/home"},
		Targets: []*mifsecv1.SteeringTarget{
			{Target: &mifsecv1.SteeringTarget_Interface{Interface: "interfaces/ran"}},
			{Target: &mifsecv1.SteeringTarget_AccessType{AccessType: mifsecv1.AccessType_ACCESS_TYPE_WLAN}},
		},
		ActivePaths: []string{homeRAN},
	}
	bulkRule = &mifsecv1.SteeringRule{
		Name: "steeringRules/bulk", Mode: mifsecv1.SteeringMode_STEERING_MODE_LOAD_BALANCE, Precedence: 100,
		Targets: []*mifsecv1.SteeringTarget{
			{Target: &mifsecv1.SteeringTarget_AccessType{AccessType: mifsecv1.AccessType_ACCESS_TYPE_WLAN}, Weight: 3},
			{Target: &mifsecv1.SteeringTarget_AccessType{AccessType: mifsecv1.AccessType_ACCESS_TYPE_RAN}, Weight: 1},
		},
		ActivePaths: []string{homeWLAN, homeRAN},
	}
)

func TestEventLinePathSteeringMobility(t *testing.T) {
	const at = "2026-11-27T05:45:00.123Z"
	tests := []struct {
		name string
		ev   *mifsecv1.Event
		want string
	}{
		{
			name: "path up",
			ev: &mifsecv1.Event{Sequence: 20, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_PATH_UP, Reason: "probe_answered",
				Subject: &mifsecv1.Event_Path{Path: &mifsecv1.Path{Name: homeWLAN, Interface: "interfaces/wlan",
					LocalAddress: "192.0.2.10:4500", RemoteAddress: "203.0.113.1:4500", State: mifsecv1.PathState_PATH_STATE_UP,
					DownReason: "stale", IkeSa: homeIKE, Rtt: durationpb.New(12500 * time.Microsecond)}}},
			want: "20 " + at + " path_up connections/home/paths/wlan-1 interface=wlan local=192.0.2.10:4500 remote=203.0.113.1:4500 state=up ike_sa=home/0123456789abcdef rtt=12.5ms reason=probe_answered",
		},
		{
			name: "path down",
			ev: &mifsecv1.Event{Sequence: 21, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_PATH_DOWN, Reason: "link_down",
				Subject: &mifsecv1.Event_Path{Path: &mifsecv1.Path{Name: homeWLAN, Interface: "interfaces/wlan",
					LocalAddress: "192.0.2.10:4500", RemoteAddress: "203.0.113.1:4500", State: mifsecv1.PathState_PATH_STATE_DOWN,
					DownReason: "link_down"}}},
			want: "21 " + at + " path_down connections/home/paths/wlan-1 interface=wlan local=192.0.2.10:4500 remote=203.0.113.1:4500 state=down down_reason=link_down reason=link_down",
		},
		{
			name: "path snapshot without addresses",
			ev: &mifsecv1.Event{Sequence: 19, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_SNAPSHOT,
				Subject: &mifsecv1.Event_Path{Path: &mifsecv1.Path{Name: homeRAN, Interface: "interfaces/ran",
					State: mifsecv1.PathState_PATH_STATE_CONNECTING}}},
			want: "19 " + at + " snapshot connections/home/paths/ran-1 interface=ran local= remote= state=connecting",
		},
		{
			name: "flows moved",
			ev: &mifsecv1.Event{Sequence: 22, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_FLOWS_MOVED, Reason: "path_down",
				Subject:    &mifsecv1.Event_SteeringRule{SteeringRule: voiceRule},
				Connection: "connections/home", FromPath: homeWLAN, ToPath: homeRAN},
			want: "22 " + at + " flows_moved steeringRules/voice mode=active-standby connection=home from=home/wlan-1 to=home/ran-1 reason=path_down",
		},
		{
			name: "ike sa migrated",
			ev: &mifsecv1.Event{Sequence: 23, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_IKE_SA_MIGRATED, Reason: "link_down",
				Subject:    &mifsecv1.Event_IkeSa{IkeSa: homeSA},
				Connection: "connections/home", FromPath: homeWLAN, ToPath: homeRAN},
			want: "23 " + at + " ike_sa_migrated " + homeIKE + " state=established local=198.51.100.7 remote=203.0.113.1 from=home/wlan-1 to=home/ran-1 reason=link_down",
		},
		{
			name: "addresses announced",
			ev: &mifsecv1.Event{Sequence: 24, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_ADDRESSES_ANNOUNCED, Reason: "interface_up",
				Subject: &mifsecv1.Event_IkeSa{IkeSa: homeSA}, Connection: "connections/home",
				Addresses: []string{"192.0.2.10", "2001:db8::10"}},
			want: "24 " + at + " addresses_announced " + homeIKE + " state=established local=198.51.100.7 remote=203.0.113.1 addresses=192.0.2.10,2001:db8::10 reason=interface_up",
		},
		{
			name: "no additional addresses announced",
			ev: &mifsecv1.Event{Sequence: 25, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_ADDRESSES_ANNOUNCED, Reason: "interface_down",
				Subject: &mifsecv1.Event_IkeSa{IkeSa: homeSA}, Connection: "connections/home"},
			want: "25 " + at + " addresses_announced " + homeIKE + " state=established local=198.51.100.7 remote=203.0.113.1 addresses=none reason=interface_down",
		},
		{
			name: "peer addresses",
			ev: &mifsecv1.Event{Sequence: 26, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_PEER_ADDRESSES, Reason: "peer_announced",
				Subject: &mifsecv1.Event_IkeSa{IkeSa: homeSA}, Connection: "connections/home", Addresses: []string{"203.0.113.2"}},
			want: "26 " + at + " peer_addresses " + homeIKE + " state=established local=198.51.100.7 remote=203.0.113.1 addresses=203.0.113.2 reason=peer_announced",
		},
		{
			name: "steering rule created",
			ev: &mifsecv1.Event{Sequence: 27, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_STEERING_RULE_CREATED, Reason: "api",
				Subject: &mifsecv1.Event_SteeringRule{SteeringRule: voiceRule}},
			want: "27 " + at + " steering_rule_created steeringRules/voice mode=active-standby precedence=10 dst=198.51.100.0/24,2001:db8::/32 proto=udp dport=5060-5061 dscp=46 conn=home targets=ran,access:wlan active=home/ran-1 reason=api",
		},
		{
			name: "steering rule updated, load balance",
			ev: &mifsecv1.Event{Sequence: 28, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_STEERING_RULE_UPDATED, Reason: "api",
				Subject: &mifsecv1.Event_SteeringRule{SteeringRule: bulkRule}},
			want: "28 " + at + " steering_rule_updated steeringRules/bulk mode=load-balance precedence=100 match=any targets=access:wlan,access:ran weights=3,1 active=home/wlan-1,home/ran-1 reason=api",
		},
		{
			name: "steering rule deleted",
			ev: &mifsecv1.Event{Sequence: 29, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_STEERING_RULE_DELETED, Reason: "api",
				Subject: &mifsecv1.Event_SteeringRule{SteeringRule: &mifsecv1.SteeringRule{Name: "steeringRules/rest",
					Mode: mifsecv1.SteeringMode_STEERING_MODE_SMALLEST_DELAY}}},
			want: "29 " + at + " steering_rule_deleted steeringRules/rest mode=smallest-delay precedence=0 match=any active= reason=api",
		},
		{
			name: "connection-only event",
			ev: &mifsecv1.Event{Sequence: 30, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_FLOWS_MOVED,
				Connection: "connections/home", ToPath: homeRAN},
			want: "30 " + at + " flows_moved - connection=home to=home/ran-1",
		},
	}
	for _, tt := range tests {
		if got := eventLine(tt.ev); got != tt.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

// Every kind of subject an event can carry is printed by its name, so a
// subject added to event.proto without a case in eventLine shows up here.
func TestEventLineEverySubject(t *testing.T) {
	ev := &mifsecv1.Event{Sequence: 1, Type: mifsecv1.EventType_EVENT_TYPE_SNAPSHOT}
	m := ev.ProtoReflect()
	oneof := m.Descriptor().Oneofs().ByName("subject")
	if oneof == nil || oneof.Fields().Len() < 5 {
		t.Fatalf("Event.subject oneof: %v", oneof)
	}
	for i := range oneof.Fields().Len() {
		fd := oneof.Fields().Get(i)
		sub := m.NewField(fd).Message()
		name := sub.Descriptor().Fields().ByName("name")
		if name == nil {
			t.Errorf("%s has no name field", fd.Name())
			continue
		}
		want := "things/" + string(fd.Name())
		sub.Set(name, protoreflect.ValueOfString(want))
		m.Set(fd, protoreflect.ValueOfMessage(sub))
		if got := eventLine(ev); !strings.Contains(got, " snapshot "+want+" ") {
			t.Errorf("subject %s: %q does not name %s", fd.Name(), got, want)
		}
	}
}
