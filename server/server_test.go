package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/iface"
	"github.com/mifsec/mifsec/engine/iface/ifacetest"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	links *ifacetest.Fake
	eng   *engine.Engine
	ifs   mifsecv1.InterfaceServiceClient
	ev    mifsecv1.EventServiceClient
	conn  *grpc.ClientConn
}

func newFixture(t *testing.T, watchBuffer int) *fixture {
	t.Helper()
	links := ifacetest.New()
	links.AddLink("wlan0", "192.0.2.10/24")
	links.AddLink("rmnet0", "198.51.100.7/30")
	eng, err := engine.New(engine.Config{StateDir: t.TempDir(), Links: links, Log: hclog.NewNullLogger(), WatchBuffer: watchBuffer})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	srv := New(eng, hclog.NewNullLogger())
	srv.Register(g)
	go g.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// A fixed window (no BDP growth) bounds what a non-reading watcher buffers.
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Shutdown()
		g.Stop()
		eng.Close()
	})
	return &fixture{links: links, eng: eng, conn: conn,
		ifs: mifsecv1.NewInterfaceServiceClient(conn), ev: mifsecv1.NewEventServiceClient(conn)}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// wantErr checks the gRPC code and the ErrorInfo reason (and field if given).
func wantErr(t *testing.T, err error, code codes.Code, reason, field string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.Reason != reason {
				t.Fatalf("reason %q, want %q (%v)", info.Reason, reason, err)
			}
			if field != "" && info.Metadata["field"] != field {
				t.Fatalf("field %q, want %q (%v)", info.Metadata["field"], field, err)
			}
			return
		}
	}
	t.Fatalf("no ErrorInfo in %v", err)
}

func (f *fixture) create(t *testing.T, id, link string, at mifsecv1.AccessType) *mifsecv1.Interface {
	t.Helper()
	r, err := f.ifs.CreateInterface(ctx(t), &mifsecv1.CreateInterfaceRequest{InterfaceId: id,
		Interface: &mifsecv1.Interface{Link: link, AccessType: at, Priority: 10}})
	if err != nil {
		t.Fatal(err)
	}
	return r.Interface
}

func TestInterfaceCRUD(t *testing.T) {
	f := newFixture(t, 0)
	got := f.create(t, "wlan", "wlan0", mifsecv1.AccessType_ACCESS_TYPE_WLAN)
	if got.Name != "interfaces/wlan" || got.State != mifsecv1.InterfaceState_INTERFACE_STATE_UP ||
		len(got.Addresses) != 1 || got.Addresses[0] != "192.0.2.10/24" || got.CreateTime == nil || got.LinkIndex == 0 {
		t.Fatalf("created %v", got)
	}
	g, err := f.ifs.GetInterface(ctx(t), &mifsecv1.GetInterfaceRequest{Name: "interfaces/wlan"})
	if err != nil || g.Interface.Link != "wlan0" {
		t.Fatalf("get: %v %v", g, err)
	}
	u, err := f.ifs.UpdateInterface(ctx(t), &mifsecv1.UpdateInterfaceRequest{
		Interface:  &mifsecv1.Interface{Name: "interfaces/wlan", Priority: 99, Metered: true, Link: "ignored"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"priority", "metered"}}})
	if err != nil || u.Interface.Priority != 99 || !u.Interface.Metered || u.Interface.Link != "wlan0" {
		t.Fatalf("update: %v %v", u, err)
	}
	f.create(t, "ran", "rmnet0", mifsecv1.AccessType_ACCESS_TYPE_RAN)
	l, err := f.ifs.ListInterfaces(ctx(t), &mifsecv1.ListInterfacesRequest{})
	if err != nil || len(l.Interfaces) != 2 || l.Interfaces[0].Name != "interfaces/ran" || l.NextPageToken != "" {
		t.Fatalf("list: %v %v", l, err)
	}
	if _, err := f.ifs.DeleteInterface(ctx(t), &mifsecv1.DeleteInterfaceRequest{Name: "interfaces/wlan"}); err != nil {
		t.Fatal(err)
	}
	_, err = f.ifs.GetInterface(ctx(t), &mifsecv1.GetInterfaceRequest{Name: "interfaces/wlan"})
	wantErr(t, err, codes.NotFound, engine.ReasonInterfaceNotFound, "name")
}

func TestListPaging(t *testing.T) {
	f := newFixture(t, 0)
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		f.links.AddLink("l" + id)
		f.create(t, id, "l"+id, mifsecv1.AccessType_ACCESS_TYPE_WIRED)
	}
	var names []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		r, err := f.ifs.ListInterfaces(ctx(t), &mifsecv1.ListInterfacesRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range r.Interfaces {
			names = append(names, i.Name)
		}
		if token = r.NextPageToken; token == "" {
			break
		}
	}
	if strings.Join(names, ",") != "interfaces/a,interfaces/b,interfaces/c,interfaces/d,interfaces/e" {
		t.Fatalf("pages gave %v", names)
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t, 0)
	f.create(t, "wlan", "wlan0", mifsecv1.AccessType_ACCESS_TYPE_WLAN)
	long := strings.Repeat("x", 10000)
	mk := func(id, link string, at mifsecv1.AccessType) *mifsecv1.CreateInterfaceRequest {
		return &mifsecv1.CreateInterfaceRequest{InterfaceId: id, Interface: &mifsecv1.Interface{Link: link, AccessType: at}}
	}
	cases := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
		field  string
	}{
		{"unknown link", func() error {
			_, err := f.ifs.CreateInterface(ctx(t), mk("x", "nosuch0", mifsecv1.AccessType_ACCESS_TYPE_WLAN))
			return err
		}, codes.FailedPrecondition, engine.ReasonLinkNotFound, "interface.link"},
		{"duplicate id", func() error {
			_, err := f.ifs.CreateInterface(ctx(t), mk("wlan", "rmnet0", mifsecv1.AccessType_ACCESS_TYPE_RAN))
			return err
		}, codes.AlreadyExists, engine.ReasonInterfaceExists, "interface_id"},
		{"link registered twice", func() error {
			_, err := f.ifs.CreateInterface(ctx(t), mk("wlan2", "wlan0", mifsecv1.AccessType_ACCESS_TYPE_WLAN))
			return err
		}, codes.AlreadyExists, engine.ReasonLinkInUse, "interface.link"},
		{"empty id", func() error {
			_, err := f.ifs.CreateInterface(ctx(t), mk("", "rmnet0", mifsecv1.AccessType_ACCESS_TYPE_RAN))
			return err
		}, codes.InvalidArgument, engine.ReasonInvalidID, "interface_id"},
		{"10000-character id", func() error {
			_, err := f.ifs.CreateInterface(ctx(t), mk(long, "rmnet0", mifsecv1.AccessType_ACCESS_TYPE_RAN))
			return err
		}, codes.InvalidArgument, engine.ReasonInvalidID, "interface_id"},
		{"upper-case id", func() error {
			_, err := f.ifs.CreateInterface(ctx(t), mk("WLAN", "rmnet0", mifsecv1.AccessType_ACCESS_TYPE_RAN))
			return err
		}, codes.InvalidArgument, engine.ReasonInvalidID, "interface_id"},
		{"empty link", func() error {
			_, err := f.ifs.CreateInterface(ctx(t), mk("ran", "", mifsecv1.AccessType_ACCESS_TYPE_RAN))
			return err
		}, codes.InvalidArgument, engine.ReasonInvalidLink, "interface.link"},
		{"10000-character link", func() error {
			_, err := f.ifs.CreateInterface(ctx(t), mk("ran", long, mifsecv1.AccessType_ACCESS_TYPE_RAN))
			return err
		}, codes.InvalidArgument, engine.ReasonInvalidLink, "interface.link"},
		{"missing interface", func() error {
			_, err := f.ifs.CreateInterface(ctx(t), &mifsecv1.CreateInterfaceRequest{InterfaceId: "ran"})
			return err
		}, codes.InvalidArgument, "MISSING_FIELD", "interface"},
		{"unspecified access type", func() error {
			_, err := f.ifs.CreateInterface(ctx(t), mk("ran", "rmnet0", mifsecv1.AccessType_ACCESS_TYPE_UNSPECIFIED))
			return err
		}, codes.InvalidArgument, engine.ReasonInvalidAccessType, "interface.access_type"},
		{"out-of-range access type", func() error {
			_, err := f.ifs.CreateInterface(ctx(t), mk("ran", "rmnet0", mifsecv1.AccessType(42)))
			return err
		}, codes.InvalidArgument, engine.ReasonInvalidAccessType, "interface.access_type"},
		{"malformed field mask", func() error {
			_, err := f.ifs.UpdateInterface(ctx(t), &mifsecv1.UpdateInterfaceRequest{
				Interface:  &mifsecv1.Interface{Name: "interfaces/wlan"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}})
			return err
		}, codes.InvalidArgument, engine.ReasonInvalidFieldMask, "update_mask"},
		{"star with other paths", func() error {
			_, err := f.ifs.UpdateInterface(ctx(t), &mifsecv1.UpdateInterfaceRequest{
				Interface:  &mifsecv1.Interface{Name: "interfaces/wlan"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"*", "priority"}}})
			return err
		}, codes.InvalidArgument, engine.ReasonInvalidFieldMask, "update_mask"},
		{"update with bad access type", func() error {
			_, err := f.ifs.UpdateInterface(ctx(t), &mifsecv1.UpdateInterfaceRequest{
				Interface:  &mifsecv1.Interface{Name: "interfaces/wlan", AccessType: 77},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"access_type"}}})
			return err
		}, codes.InvalidArgument, engine.ReasonInvalidAccessType, "interface.access_type"},
		{"update unknown", func() error {
			_, err := f.ifs.UpdateInterface(ctx(t), &mifsecv1.UpdateInterfaceRequest{
				Interface:  &mifsecv1.Interface{Name: "interfaces/nope", Priority: 1},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"priority"}}})
			return err
		}, codes.NotFound, engine.ReasonInterfaceNotFound, "name"},
		{"bad name", func() error {
			_, err := f.ifs.GetInterface(ctx(t), &mifsecv1.GetInterfaceRequest{Name: "connections/wlan"})
			return err
		}, codes.InvalidArgument, "INVALID_NAME", "name"},
		{"10000-character name", func() error {
			_, err := f.ifs.GetInterface(ctx(t), &mifsecv1.GetInterfaceRequest{Name: "interfaces/" + long})
			return err
		}, codes.InvalidArgument, "INVALID_NAME", "name"},
		{"delete unknown", func() error {
			_, err := f.ifs.DeleteInterface(ctx(t), &mifsecv1.DeleteInterfaceRequest{Name: "interfaces/nope"})
			return err
		}, codes.NotFound, engine.ReasonInterfaceNotFound, "name"},
		{"page token never issued", func() error {
			_, err := f.ifs.ListInterfaces(ctx(t), &mifsecv1.ListInterfacesRequest{PageToken: "bm90LWEtdG9rZW4tYXQtYWxsLXJlYWxseQ"})
			return err
		}, codes.InvalidArgument, reasonPageToken, "page_token"},
		{"page token garbage", func() error {
			_, err := f.ifs.ListInterfaces(ctx(t), &mifsecv1.ListInterfacesRequest{PageToken: "%%%"})
			return err
		}, codes.InvalidArgument, reasonPageToken, "page_token"},
		{"negative page size", func() error {
			_, err := f.ifs.ListInterfaces(ctx(t), &mifsecv1.ListInterfacesRequest{PageSize: -1})
			return err
		}, codes.InvalidArgument, reasonPageSize, "page_size"},
		{"watch bad category", func() error {
			s, err := f.ev.Watch(ctx(t), &mifsecv1.WatchRequest{Categories: []mifsecv1.EventCategory{99}})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.InvalidArgument, "INVALID_CATEGORY", "categories"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantErr(t, c.call(), c.code, c.reason, c.field) })
	}
	// Nothing above changed the state.
	l, err := f.ifs.ListInterfaces(ctx(t), &mifsecv1.ListInterfacesRequest{})
	if err != nil || len(l.Interfaces) != 1 || l.Interfaces[0].Priority != 10 || l.Interfaces[0].Link != "wlan0" {
		t.Fatalf("state changed by bad input: %v %v", l, err)
	}
}

func TestAllowMissingFollowsLink(t *testing.T) {
	f := newFixture(t, 0)
	r, err := f.ifs.CreateInterface(ctx(t), &mifsecv1.CreateInterfaceRequest{InterfaceId: "sat", AllowMissing: true,
		Interface: &mifsecv1.Interface{Link: "sat0", AccessType: mifsecv1.AccessType_ACCESS_TYPE_SATELLITE}})
	if err != nil || r.Interface.State != mifsecv1.InterfaceState_INTERFACE_STATE_ABSENT {
		t.Fatalf("%v %v", r, err)
	}
	s, err := f.ev.Watch(ctx(t), &mifsecv1.WatchRequest{Interface: "interfaces/sat"})
	if err != nil {
		t.Fatal(err)
	}
	recvUntil(t, s, mifsecv1.EventType_EVENT_TYPE_END_OF_SNAPSHOT)
	f.links.AddLink("sat0", "203.0.113.5/24")
	ev := recvUntil(t, s, mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_UP)
	if ev.GetInterface().GetState() != mifsecv1.InterfaceState_INTERFACE_STATE_UP {
		t.Fatalf("event %v", ev)
	}
	recvUntil(t, s, mifsecv1.EventType_EVENT_TYPE_INTERFACE_ADDRESS_ADDED)
}

func recvUntil(t *testing.T, s mifsecv1.EventService_WatchClient, want mifsecv1.EventType) *mifsecv1.Event {
	t.Helper()
	for {
		r, err := s.Recv()
		if err != nil {
			t.Fatalf("waiting for %v: %v", want, err)
		}
		if r.Event.Type == want {
			return r.Event
		}
	}
}

func TestWatchSnapshotThenLive(t *testing.T) {
	f := newFixture(t, 0)
	f.create(t, "wlan", "wlan0", mifsecv1.AccessType_ACCESS_TYPE_WLAN)
	f.create(t, "ran", "rmnet0", mifsecv1.AccessType_ACCESS_TYPE_RAN)
	s, err := f.ev.Watch(ctx(t), &mifsecv1.WatchRequest{Categories: []mifsecv1.EventCategory{mifsecv1.EventCategory_EVENT_CATEGORY_INTERFACE}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var last uint64
	for i := 0; i < 3; i++ {
		r, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Event.Type.String()+":"+r.Event.GetInterface().GetName())
		last = r.Event.Sequence
	}
	want := "EVENT_TYPE_SNAPSHOT:interfaces/ran,EVENT_TYPE_SNAPSHOT:interfaces/wlan,EVENT_TYPE_END_OF_SNAPSHOT:"
	if strings.Join(got, ",") != want {
		t.Fatalf("snapshot %v", got)
	}
	// Each kernel change is made after the previous event arrived: the
	// engine re-reads the link on every notification, so changes made
	// faster than that are seen as one.
	steps := []struct {
		do   func()
		want mifsecv1.EventType
	}{
		{func() { f.links.SetState("wlan0", iface.Down) }, mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_DOWN},
		{func() { f.links.RemoveAddr("wlan0", "192.0.2.10/24") }, mifsecv1.EventType_EVENT_TYPE_INTERFACE_ADDRESS_REMOVED},
		{func() { f.links.SetState("wlan0", iface.Up) }, mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_UP},
	}
	for _, st := range steps {
		st.do()
		r, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.Event.Type != st.want || r.Event.Sequence != last+1 || r.Event.Time == nil {
			t.Fatalf("got %v (seq %d after %d), want %v", r.Event.Type, r.Event.Sequence, last, st.want)
		}
		last = r.Event.Sequence
	}
	g, _ := f.ifs.GetInterface(ctx(t), &mifsecv1.GetInterfaceRequest{Name: "interfaces/wlan"})
	if g.Interface.Counters.LinkTransitions != 2 || g.Interface.Counters.AddressChanges != 1 {
		t.Fatalf("counters %v", g.Interface.Counters)
	}
}

// A watcher that never reads is ended with RESOURCE_EXHAUSTED once it falls
// behind, and the engine keeps serving everyone else.
func TestWatchOverflow(t *testing.T) {
	f := newFixture(t, 4)
	// Many addresses make each event about 2 KiB, so 1000 events are far
	// more than the stream's write quota and flow-control windows hold.
	for i := range 60 {
		f.links.AddAddr("wlan0", fmt.Sprintf("2001:db8::%x/64", i+1))
	}
	f.create(t, "wlan", "wlan0", mifsecv1.AccessType_ACCESS_TYPE_WLAN)
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := f.ev.Watch(c, &mifsecv1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Generate far more events than the gRPC window (64 KiB) and the buffer
	// hold: link flaps, which cost no disk writes.
	// A second watcher that reads paces the flaps, so none is coalesced.
	pace, err := f.ev.Watch(c, &mifsecv1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recvUntil(t, pace, mifsecv1.EventType_EVENT_TYPE_END_OF_SNAPSHOT)
	for i := 0; i < 1000; i++ {
		f.links.SetState("wlan0", []iface.State{iface.Down, iface.Up}[i%2])
		recvUntil(t, pace, []mifsecv1.EventType{mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_DOWN, mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_UP}[i%2])
	}
	for {
		_, err := s.Recv()
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			t.Fatal("stream ended without error")
		}
		wantErr(t, err, codes.ResourceExhausted, engine.ReasonWatchOverflow, "")
		break
	}
}

func TestHealthAndReflection(t *testing.T) {
	f := newFixture(t, 0)
	h, err := healthpb.NewHealthClient(f.conn).Check(ctx(t), &healthpb.HealthCheckRequest{Service: "mifsec.v1.InterfaceService"})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v %v", h, err)
	}
	rc, err := reflectionpb.NewServerReflectionClient(f.conn).ServerReflectionInfo(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.CloseSend()
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range r.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	joined := strings.Join(names, ",")
	for _, want := range []string{"mifsec.v1.InterfaceService", "mifsec.v1.EventService", "grpc.health.v1.Health"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("reflection lists %v, missing %s", names, want)
		}
	}
}

func TestRestartRestores(t *testing.T) {
	links := ifacetest.New()
	links.AddLink("wlan0")
	dir := t.TempDir()
	e1, err := engine.New(engine.Config{StateDir: dir, Links: links})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e1.CreateInterface(ctx(t), "wlan", engine.InterfaceSpec{Link: "wlan0", AccessType: engine.AccessWLAN, Priority: 7}, false); err != nil {
		t.Fatal(err)
	}
	e1.Close()
	links2 := ifacetest.New()
	e2, err := engine.New(engine.Config{StateDir: dir, Links: links2})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	got, _, err := e2.ListInterfaces(ctx(t), "", 10)
	if err != nil || len(got) != 1 || got[0].Priority != 7 || got[0].State != iface.Absent {
		t.Fatalf("restored %+v %v", got, err)
	}
}
