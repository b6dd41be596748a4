package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// fakeDaemon is a test double of mifsecd's services: in-memory tables
// with the API's errors, paging capped at pageCap, and a scripted event
// stream. The secret, pool, connection and SA services are in
// fake_objects_test.go; steering rules, paths and migration in
// fake_steering_test.go.
type fakeDaemon struct {
	mifsecv1.UnimplementedInterfaceServiceServer
	mifsecv1.UnimplementedEventServiceServer
	mifsecv1.UnimplementedSecretServiceServer
	mifsecv1.UnimplementedPoolServiceServer
	mifsecv1.UnimplementedConnectionServiceServer
	mifsecv1.UnimplementedSecurityAssociationServiceServer
	mifsecv1.UnimplementedSteeringServiceServer

	pageCap int
	// live events sent after the snapshot; then the stream ends with
	// endErr (nil: EOF) unless holdOpen is set.
	live     []*mifsecv1.Event
	endErr   error
	holdOpen bool
	// blockGet makes GetInterface wait for its context (timeouts).
	blockGet bool

	mu       sync.Mutex
	ifaces   map[string]*mifsecv1.Interface
	secrets  map[string]*mifsecv1.Secret
	pools    map[string]*mifsecv1.Pool
	conns    map[string]*mifsecv1.Connection
	ikeSAs   map[string]*mifsecv1.IkeSa
	childSAs map[string]*mifsecv1.ChildSa
	rules    map[string]*mifsecv1.SteeringRule
	paths    map[string]*mifsecv1.Path
	requests []proto.Message
	seq      uint64
}

func newFakeDaemon() *fakeDaemon {
	return &fakeDaemon{pageCap: 2, ifaces: map[string]*mifsecv1.Interface{},
		secrets: map[string]*mifsecv1.Secret{}, pools: map[string]*mifsecv1.Pool{},
		conns: map[string]*mifsecv1.Connection{}, ikeSAs: map[string]*mifsecv1.IkeSa{},
		childSAs: map[string]*mifsecv1.ChildSa{}, rules: map[string]*mifsecv1.SteeringRule{},
		paths: map[string]*mifsecv1.Path{}}
}

var idPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

var fakeTime = timestamppb.New(time.Date(2026, 11, 27, 5, 45, 0, 123e6, time.UTC))

func apiError(c codes.Code, reason, field, format string, args ...any) error {
	st, err := status.New(c, fmt.Sprintf(format, args...)).WithDetails(&errdetails.ErrorInfo{
		Reason: reason, Domain: "mifsec.dev", Metadata: map[string]string{"field": field},
	})
	if err != nil {
		return status.Error(codes.Internal, "fake: "+err.Error())
	}
	return st.Err()
}

func (f *fakeDaemon) record(m proto.Message) {
	f.mu.Lock()
	f.requests = append(f.requests, proto.Clone(m))
	f.mu.Unlock()
}

// lastRequest returns the last request received, nil if none.
func (f *fakeDaemon) lastRequest() proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		return nil
	}
	return f.requests[len(f.requests)-1]
}

func (f *fakeDaemon) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// put stores an interface as the daemon would report it.
func (f *fakeDaemon) put(i *mifsecv1.Interface) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ifaces[i.GetName()] = i
}

func (f *fakeDaemon) get(name string) *mifsecv1.Interface {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ifaces[name]
}

func (f *fakeDaemon) CreateInterface(_ context.Context, req *mifsecv1.CreateInterfaceRequest) (*mifsecv1.CreateInterfaceResponse, error) {
	f.record(req)
	if !idPattern.MatchString(req.GetInterfaceId()) {
		return nil, apiError(codes.InvalidArgument, "INVALID_INTERFACE_ID", "interface_id", "bad interface id %q", req.GetInterfaceId())
	}
	if req.GetInterface().GetLink() == "" {
		return nil, apiError(codes.InvalidArgument, "FIELD_REQUIRED", "interface.link", "link is required")
	}
	name := "interfaces/" + req.GetInterfaceId()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ifaces[name]; ok {
		return nil, apiError(codes.AlreadyExists, "INTERFACE_EXISTS", "interface_id", "interface %q already exists", name)
	}
	i := proto.Clone(req.GetInterface()).(*mifsecv1.Interface)
	i.Name = name
	i.State = mifsecv1.InterfaceState_INTERFACE_STATE_UP
	if req.GetAllowMissing() {
		i.State = mifsecv1.InterfaceState_INTERFACE_STATE_ABSENT
	}
	i.CreateTime, i.UpdateTime = fakeTime, fakeTime
	f.ifaces[name] = i
	return &mifsecv1.CreateInterfaceResponse{Interface: i}, nil
}

func (f *fakeDaemon) GetInterface(ctx context.Context, req *mifsecv1.GetInterfaceRequest) (*mifsecv1.GetInterfaceResponse, error) {
	f.record(req)
	if f.blockGet {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	i := f.get(req.GetName())
	if i == nil {
		return nil, apiError(codes.NotFound, "INTERFACE_NOT_FOUND", "name", "interface %q not found", req.GetName())
	}
	return &mifsecv1.GetInterfaceResponse{Interface: i}, nil
}

func (f *fakeDaemon) ListInterfaces(_ context.Context, req *mifsecv1.ListInterfacesRequest) (*mifsecv1.ListInterfacesResponse, error) {
	f.record(req)
	f.mu.Lock()
	names := make([]string, 0, len(f.ifaces))
	for n := range f.ifaces {
		names = append(names, n)
	}
	sort.Strings(names)
	all := make([]*mifsecv1.Interface, len(names))
	for i, n := range names {
		all[i] = f.ifaces[n]
	}
	f.mu.Unlock()
	start := 0
	if t := req.GetPageToken(); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > len(all) {
			return nil, apiError(codes.InvalidArgument, "INVALID_PAGE_TOKEN", "page_token", "bad page token")
		}
		start = n
	}
	size := int(req.GetPageSize())
	if size <= 0 || size > f.pageCap {
		size = f.pageCap
	}
	end := min(start+size, len(all))
	resp := &mifsecv1.ListInterfacesResponse{Interfaces: all[start:end]}
	if end < len(all) {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

func (f *fakeDaemon) UpdateInterface(_ context.Context, req *mifsecv1.UpdateInterfaceRequest) (*mifsecv1.UpdateInterfaceResponse, error) {
	f.record(req)
	name := req.GetInterface().GetName()
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.ifaces[name]
	if !ok {
		return nil, apiError(codes.NotFound, "INTERFACE_NOT_FOUND", "interface.name", "interface %q not found", name)
	}
	next := proto.Clone(cur).(*mifsecv1.Interface)
	in := req.GetInterface()
	for _, p := range req.GetUpdateMask().GetPaths() {
		switch p {
		case "link":
			next.Link = in.GetLink()
		case "access_type":
			next.AccessType = in.GetAccessType()
		case "priority":
			next.Priority = in.GetPriority()
		case "metered":
			next.Metered = in.GetMetered()
		default:
			return nil, apiError(codes.InvalidArgument, "INVALID_UPDATE_MASK", "update_mask", "cannot update %q", p)
		}
	}
	f.ifaces[name] = next
	return &mifsecv1.UpdateInterfaceResponse{Interface: next}, nil
}

func (f *fakeDaemon) DeleteInterface(_ context.Context, req *mifsecv1.DeleteInterfaceRequest) (*mifsecv1.DeleteInterfaceResponse, error) {
	f.record(req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ifaces[req.GetName()]; !ok {
		return nil, apiError(codes.NotFound, "INTERFACE_NOT_FOUND", "name", "interface %q not found", req.GetName())
	}
	delete(f.ifaces, req.GetName())
	return &mifsecv1.DeleteInterfaceResponse{}, nil
}

// Watch sends a snapshot of the selected interfaces, the end marker, the
// scripted live events, then ends as configured.
func (f *fakeDaemon) Watch(req *mifsecv1.WatchRequest, stream grpc.ServerStreamingServer[mifsecv1.WatchResponse]) error {
	f.record(req)
	for _, c := range req.GetCategories() {
		if c != mifsecv1.EventCategory_EVENT_CATEGORY_INTERFACE {
			return apiError(codes.InvalidArgument, "INVALID_CATEGORY", "categories", "unknown category %v", c)
		}
	}
	f.mu.Lock()
	var snap []*mifsecv1.Interface
	for _, i := range f.ifaces {
		if req.GetInterface() == "" || req.GetInterface() == i.GetName() {
			snap = append(snap, i)
		}
	}
	seq := f.seq
	f.mu.Unlock()
	slices.SortFunc(snap, func(a, b *mifsecv1.Interface) int {
		if a.GetName() < b.GetName() {
			return -1
		}
		return 1
	})
	send := func(ev *mifsecv1.Event) error { return stream.Send(&mifsecv1.WatchResponse{Event: ev}) }
	for _, i := range snap {
		if err := send(&mifsecv1.Event{Sequence: seq, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_SNAPSHOT,
			Subject: &mifsecv1.Event_Interface{Interface: i}}); err != nil {
			return err
		}
	}
	if err := send(&mifsecv1.Event{Sequence: seq, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_END_OF_SNAPSHOT}); err != nil {
		return err
	}
	for _, ev := range f.live {
		if err := send(ev); err != nil {
			return err
		}
	}
	if f.holdOpen {
		<-stream.Context().Done()
		return status.FromContextError(stream.Context().Err()).Err()
	}
	return f.endErr
}

// startFake serves f on a unix socket in a fresh t.TempDir() and returns
// the socket path; the server stops when the test ends.
func startFake(t *testing.T, f *fakeDaemon) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.sock")
	if len(path) > 100 {
		t.Fatalf("socket path too long for sun_path: %s", path)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	mifsecv1.RegisterInterfaceServiceServer(srv, f)
	mifsecv1.RegisterEventServiceServer(srv, f)
	mifsecv1.RegisterSecretServiceServer(srv, f)
	mifsecv1.RegisterPoolServiceServer(srv, f)
	mifsecv1.RegisterConnectionServiceServer(srv, f)
	mifsecv1.RegisterSecurityAssociationServiceServer(srv, f)
	mifsecv1.RegisterSteeringServiceServer(srv, f)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return path
}
