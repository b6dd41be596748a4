package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

var (
	ifWLAN = &mifsecv1.Interface{
		Name: "interfaces/wlan", Link: "wlan0", AccessType: mifsecv1.AccessType_ACCESS_TYPE_WLAN,
		Priority: 10, State: mifsecv1.InterfaceState_INTERFACE_STATE_UP,
		Addresses:  []string{"192.0.2.10/24", "2001:db8::10/64"},
		Counters:   &mifsecv1.InterfaceCounters{RxBytes: 1500},
		CreateTime: fakeTime, LinkIndex: 3, Mtu: 1500,
	}
	ifRAN = &mifsecv1.Interface{
		Name: "interfaces/ran", Link: "rmnet0", AccessType: mifsecv1.AccessType_ACCESS_TYPE_RAN,
		Metered: true, State: mifsecv1.InterfaceState_INTERFACE_STATE_ABSENT,
	}
)

func TestInterfaceTable(t *testing.T) {
	tests := []struct {
		name   string
		ifaces []*mifsecv1.Interface
		want   string
	}{
		{"empty", nil, "NAME  LINK  ACCESS  PRIORITY  METERED  STATE  ADDRESSES\n"},
		{"two", []*mifsecv1.Interface{ifRAN, ifWLAN}, "" +
			"NAME  LINK    ACCESS  PRIORITY  METERED  STATE   ADDRESSES\n" +
			"ran   rmnet0  ran     0         yes      absent  -\n" +
			"wlan  wlan0   wlan    10        no       up      192.0.2.10/24,2001:db8::10/64\n"},
		{"unknown enum values and empty link", []*mifsecv1.Interface{{Name: "interfaces/x", AccessType: 9}}, "" +
			"NAME  LINK  ACCESS  PRIORITY  METERED  STATE        ADDRESSES\n" +
			"x     -     9       0         no       unspecified  -\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := writeInterfaceTable(&buf, tt.ifaces); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tt.want {
			t.Errorf("%s:\ngot\n%s\nwant\n%s", tt.name, buf.String(), tt.want)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, ifRAN); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// Indented, default-valued scalars present, camelCase names.
	for _, want := range []string{"{\n  \"name\": \"interfaces/ran\",\n", `"priority": 0`, `"accessType": "ACCESS_TYPE_RAN"`, `"metered": true`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	var back mifsecv1.Interface
	if err := protojson.Unmarshal(buf.Bytes(), &back); err != nil || !proto.Equal(&back, ifRAN) {
		t.Errorf("round trip: %v, %v", &back, err)
	}
	// Byte-stable output, whatever protojson's spacing does.
	var again bytes.Buffer
	if err := writeJSON(&again, ifRAN); err != nil || again.String() != out {
		t.Errorf("output not stable: %q vs %q", again.String(), out)
	}
}

func TestWriteJSONArray(t *testing.T) {
	tests := []struct {
		ifaces []*mifsecv1.Interface
		n      int
	}{{nil, 0}, {[]*mifsecv1.Interface{ifWLAN}, 1}, {[]*mifsecv1.Interface{ifRAN, ifWLAN}, 2}}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := writeJSONArray(&buf, tt.ifaces); err != nil {
			t.Fatal(err)
		}
		var raw []json.RawMessage
		if err := json.Unmarshal(buf.Bytes(), &raw); err != nil || len(raw) != tt.n {
			t.Fatalf("%q: %d items, %v", buf.String(), len(raw), err)
		}
		for i, r := range raw {
			var back mifsecv1.Interface
			if err := protojson.Unmarshal(r, &back); err != nil || !proto.Equal(&back, tt.ifaces[i]) {
				t.Errorf("item %d: %v, %v", i, &back, err)
			}
		}
	}
}

func TestEventLine(t *testing.T) {
	tests := []struct {
		name string
		ev   *mifsecv1.Event
		want string
	}{
		{
			name: "snapshot",
			ev: &mifsecv1.Event{Sequence: 7, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_SNAPSHOT,
				Subject: &mifsecv1.Event_Interface{Interface: ifWLAN}},
			want: "7 2026-11-27T05:45:00.123Z snapshot interfaces/wlan link=wlan0 access=wlan priority=10 metered=no state=up addresses=192.0.2.10/24,2001:db8::10/64",
		},
		{
			name: "end of snapshot",
			ev:   &mifsecv1.Event{Sequence: 7, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_END_OF_SNAPSHOT},
			want: "7 2026-11-27T05:45:00.123Z end_of_snapshot - -",
		},
		{
			name: "address added",
			ev: &mifsecv1.Event{Sequence: 8, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_INTERFACE_ADDRESS_ADDED,
				Reason: "netlink", Address: "198.51.100.7/32", Subject: &mifsecv1.Event_Interface{Interface: ifRAN}},
			want: "8 2026-11-27T05:45:00.123Z interface_address_added interfaces/ran address=198.51.100.7/32 link=rmnet0 reason=netlink",
		},
		{
			name: "no time",
			ev: &mifsecv1.Event{Sequence: 9, Type: mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_DOWN, Reason: "netlink",
				Subject: &mifsecv1.Event_Interface{Interface: ifRAN}},
			want: "9 - interface_link_down interfaces/ran link=rmnet0 access=ran priority=0 metered=yes state=absent addresses= reason=netlink",
		},
		{
			name: "ike sa down",
			ev: &mifsecv1.Event{Sequence: 10, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_IKE_SA_DOWN, Reason: "dpd",
				Subject: &mifsecv1.Event_IkeSa{IkeSa: &mifsecv1.IkeSa{
					Name: "connections/home/ikeSas/0123456789abcdef", State: mifsecv1.IkeSaState_IKE_SA_STATE_DOWN,
					LocalAddress: "192.0.2.10", RemoteAddress: "203.0.113.1",
					DownReason: mifsecv1.DownReason_DOWN_REASON_DPD_TIMEOUT}}},
			want: "10 2026-11-27T05:45:00.123Z ike_sa_down connections/home/ikeSas/0123456789abcdef state=down local=192.0.2.10 remote=203.0.113.1 down_reason=dpd_timeout reason=dpd",
		},
		{
			name: "child sa up",
			ev: &mifsecv1.Event{Sequence: 11, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_CHILD_SA_UP,
				Subject: &mifsecv1.Event_ChildSa{ChildSa: &mifsecv1.ChildSa{
					Name: "connections/home/ikeSas/0123456789abcdef/childSas/1", State: mifsecv1.ChildSaState_CHILD_SA_STATE_INSTALLED,
					SpiIn: "c0ffee01", SpiOut: "c0ffee02", LocalTs: []string{"10.0.0.2/32"}, RemoteTs: []string{"0.0.0.0/0", "::/0"}}}},
			want: "11 2026-11-27T05:45:00.123Z child_sa_up connections/home/ikeSas/0123456789abcdef/childSas/1 state=installed spi_in=c0ffee01 spi_out=c0ffee02 local_ts=10.0.0.2/32 remote_ts=0.0.0.0/0,::/0",
		},
	}
	for _, tt := range tests {
		if got := eventLine(tt.ev); got != tt.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestWriteJSONLine(t *testing.T) {
	ev := &mifsecv1.Event{Sequence: 8, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_INTERFACE_CREATED,
		Subject: &mifsecv1.Event_Interface{Interface: ifWLAN}}
	var buf bytes.Buffer
	if err := writeJSONLine(&buf, ev); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("not one line: %q", line)
	}
	var back mifsecv1.Event
	if err := protojson.Unmarshal(buf.Bytes(), &back); err != nil || !proto.Equal(&back, ev) {
		t.Errorf("round trip: %v, %v", &back, err)
	}
	if !strings.Contains(line, `"time":"2026-11-27T05:45:00.123Z"`) {
		t.Errorf("time not RFC 3339: %s", line)
	}
}
