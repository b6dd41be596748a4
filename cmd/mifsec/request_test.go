package main

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"github.com/mifsec/mifsec/client"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// parseInterfaceFlags registers the interface flags on a bare command, as
// add (create) or update do, and parses args into them.
func parseInterfaceFlags(t *testing.T, create bool, args []string) (*interfaceFlags, *pflag.FlagSet, error) {
	t.Helper()
	var v interfaceFlags
	cmd := &cobra.Command{Use: "x"}
	v.register(cmd, create)
	err := cmd.Flags().Parse(args)
	return &v, cmd.Flags(), err
}

func TestParseEnum(t *testing.T) {
	tests := []struct {
		in      string
		want    mifsecv1.AccessType
		wantErr string
	}{
		{"ran", mifsecv1.AccessType_ACCESS_TYPE_RAN, ""},
		{"WLAN", mifsecv1.AccessType_ACCESS_TYPE_WLAN, ""},
		{" wired ", mifsecv1.AccessType_ACCESS_TYPE_WIRED, ""},
		{"satellite", mifsecv1.AccessType_ACCESS_TYPE_SATELLITE, ""},
		{"other", mifsecv1.AccessType_ACCESS_TYPE_OTHER, ""},
		{"ACCESS_TYPE_WLAN", mifsecv1.AccessType_ACCESS_TYPE_WLAN, ""},
		{"access_type_ran", mifsecv1.AccessType_ACCESS_TYPE_RAN, ""},
		{"unspecified", 0, `unknown access type "unspecified" (want one of ran, wlan, wired, satellite, other)`},
		{"ACCESS_TYPE_UNSPECIFIED", 0, "unknown access type"},
		{"wifi", 0, `unknown access type "wifi" (want one of ran, wlan, wired, satellite, other)`},
		{"", 0, "unknown access type"},
		{"1", 0, "unknown access type"},
	}
	for _, tt := range tests {
		got, err := parseEnum[mifsecv1.AccessType](tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseEnum(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseEnum(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestEnumShort(t *testing.T) {
	tests := []struct {
		in   interface{ String() string }
		want string
	}{
		{mifsecv1.AccessType_ACCESS_TYPE_SATELLITE, "satellite"},
		{mifsecv1.AccessType_ACCESS_TYPE_UNSPECIFIED, "unspecified"},
		{mifsecv1.InterfaceState_INTERFACE_STATE_ABSENT, "absent"},
		{mifsecv1.EventType_EVENT_TYPE_END_OF_SNAPSHOT, "end_of_snapshot"},
		{mifsecv1.EventType_EVENT_TYPE_INTERFACE_ADDRESS_ADDED, "interface_address_added"},
		{mifsecv1.AccessType(42), "42"},
	}
	for _, tt := range tests {
		var got string
		switch e := tt.in.(type) {
		case mifsecv1.AccessType:
			got = enumShort(e)
		case mifsecv1.InterfaceState:
			got = enumShort(e)
		case mifsecv1.EventType:
			got = enumShort(e)
		}
		if got != tt.want {
			t.Errorf("enumShort(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEnumListFlag(t *testing.T) {
	var got []mifsecv1.EventCategory
	f := newEnumListFlag(&got)
	if err := f.Set("interface"); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("INTERFACE,interface"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || f.String() != "interface,interface,interface" {
		t.Errorf("got %v / %q", got, f.String())
	}
	want := `unknown event category "bogus" (want one of ` + strings.Join(enumChoices(mifsecv1.EventCategory(0).Descriptor()), ", ") + ")"
	if err := f.Set("interface,bogus"); err == nil || err.Error() != want {
		t.Errorf("got %v", err)
	}
}

func TestBuildCreateRequest(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		args    []string
		want    *mifsecv1.CreateInterfaceRequest
		wantErr bool
	}{
		{
			name: "minimal", id: "wlan",
			args: []string{"--link", "wlan0", "--access-type", "wlan"},
			want: &mifsecv1.CreateInterfaceRequest{InterfaceId: "wlan", Interface: &mifsecv1.Interface{
				Link: "wlan0", AccessType: mifsecv1.AccessType_ACCESS_TYPE_WLAN}},
		},
		{
			name: "full name and every flag", id: "interfaces/ran",
			args: []string{"--link=rmnet0", "--access-type=RAN", "--priority=7", "--metered", "--allow-missing"},
			want: &mifsecv1.CreateInterfaceRequest{InterfaceId: "ran", AllowMissing: true, Interface: &mifsecv1.Interface{
				Link: "rmnet0", AccessType: mifsecv1.AccessType_ACCESS_TYPE_RAN, Priority: 7, Metered: true}},
		},
		{name: "other collection", id: "connections/c1", args: []string{"--link", "x", "--access-type", "wlan"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _, err := parseInterfaceFlags(t, true, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			got, err := buildCreateRequest(tt.id, v)
			if tt.wantErr {
				var ne *client.NameError
				if !errors.As(err, &ne) {
					t.Fatalf("got %v, %v; want *client.NameError", got, err)
				}
				return
			}
			if err != nil || !proto.Equal(got, tt.want) {
				t.Errorf("got %v, %v\nwant %v", got, err, tt.want)
			}
		})
	}
}

func TestBuildUpdateRequest(t *testing.T) {
	tests := []struct {
		name      string
		id        string
		args      []string
		wantPaths []string
		wantIface *mifsecv1.Interface
		wantErr   string
	}{
		{
			name: "priority only", id: "wlan", args: []string{"--priority", "20"},
			wantPaths: []string{"priority"},
			wantIface: &mifsecv1.Interface{Name: "interfaces/wlan", Priority: 20},
		},
		{
			name: "metered false is a change", id: "interfaces/ran", args: []string{"--metered=false"},
			wantPaths: []string{"metered"},
			wantIface: &mifsecv1.Interface{Name: "interfaces/ran"},
		},
		{
			name: "priority zero is a change", id: "ran", args: []string{"--priority=0"},
			wantPaths: []string{"priority"},
			wantIface: &mifsecv1.Interface{Name: "interfaces/ran"},
		},
		{
			name: "all, mask in field order", id: "eth",
			args:      []string{"--metered", "--priority", "3", "--access-type", "wired", "--link", "eth1"},
			wantPaths: []string{"link", "access_type", "priority", "metered"},
			wantIface: &mifsecv1.Interface{Name: "interfaces/eth", Link: "eth1",
				AccessType: mifsecv1.AccessType_ACCESS_TYPE_WIRED, Priority: 3, Metered: true},
		},
		{name: "nothing set", id: "wlan", args: nil, wantErr: "nothing to update"},
		{name: "empty link", id: "wlan", args: []string{"--link="}, wantErr: "--link must not be empty"},
		{name: "bad id", id: "interfaces/a/b", args: []string{"--priority=1"}, wantErr: "bad interface name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, fs, err := parseInterfaceFlags(t, false, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			got, err := buildUpdateRequest(tt.id, fs, v)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, %v; want error %q", got, err, tt.wantErr)
				}
				if exitCode(err) != exitUsage {
					t.Errorf("exit code %d, want %d", exitCode(err), exitUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.GetUpdateMask().GetPaths(), tt.wantPaths) {
				t.Errorf("mask %v, want %v", got.GetUpdateMask().GetPaths(), tt.wantPaths)
			}
			if !proto.Equal(got.GetInterface(), tt.wantIface) {
				t.Errorf("interface %v, want %v", got.GetInterface(), tt.wantIface)
			}
		})
	}
}

func TestBadFlagValues(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--access-type", "wifi"}, `unknown access type "wifi"`},
		{[]string{"--priority", "-1"}, `invalid argument "-1" for "--priority"`},
		{[]string{"--metered=maybe"}, `invalid argument "maybe" for "--metered"`},
		{[]string{"--allow-missing"}, "unknown flag: --allow-missing"},
	}
	for _, tt := range tests {
		_, _, err := parseInterfaceFlags(t, false, tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: got %v, want %q", tt.args, err, tt.want)
		}
	}
}

func TestBuildWatchRequest(t *testing.T) {
	tests := []struct {
		name    string
		v       watchFlags
		want    *mifsecv1.WatchRequest
		wantErr string
	}{
		{"all", watchFlags{}, &mifsecv1.WatchRequest{}, ""},
		{"filtered", watchFlags{categories: []mifsecv1.EventCategory{1}, iface: "wlan"},
			&mifsecv1.WatchRequest{Categories: []mifsecv1.EventCategory{1}, Interface: "interfaces/wlan"}, ""},
		{"connection", watchFlags{connection: "connections/home"},
			&mifsecv1.WatchRequest{Connection: "connections/home"}, ""},
		{"bad connection", watchFlags{connection: "interfaces/x"}, nil, "bad connection name"},
		{"negative count", watchFlags{count: -1}, nil, "--count must be 0"},
		{"bad interface", watchFlags{iface: "x/y"}, nil, "bad interface name"},
	}
	for _, tt := range tests {
		got, err := buildWatchRequest(&tt.v)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != exitUsage {
				t.Errorf("%s: got %v, %v; want usage error %q", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !proto.Equal(got, tt.want) {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}
