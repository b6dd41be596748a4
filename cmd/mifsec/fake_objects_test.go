package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// The fake SecretService, PoolService, ConnectionService and
// SecurityAssociationService: enough of the daemon's rules (ids, required
// fields, update masks, in-use checks, list parents with "-") for the CLI's
// requests and errors to be checked end to end.

// sortedValues returns m's values ordered by key (resource name).
func sortedValues[T any](m map[string]T) []T {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

// page cuts one page out of all (pageCap caps page_size).
func (f *fakeDaemon) page(n int, size int32, token string) (start, end int, next string, err error) {
	if token != "" {
		start, err = strconv.Atoi(token)
		if err != nil || start < 0 || start > n {
			return 0, 0, "", apiError(codes.InvalidArgument, "INVALID_PAGE_TOKEN", "page_token", "bad page token")
		}
	}
	sz := int(size)
	if sz <= 0 || sz > f.pageCap {
		sz = f.pageCap
	}
	end = min(start+sz, n)
	if end < n {
		next = strconv.Itoa(end)
	}
	return start, end, next, nil
}

// applyMask copies the masked top-level fields from src to dst; an unset
// field in src clears it in dst. Empty paths mean all allowed fields.
func applyMask(dst, src proto.Message, paths, allowed []string) error {
	if len(paths) == 0 {
		paths = allowed
	}
	src = proto.Clone(src)
	d, s := dst.ProtoReflect(), src.ProtoReflect()
	for _, p := range paths {
		if !slices.Contains(allowed, p) {
			return apiError(codes.InvalidArgument, "INVALID_FIELD_MASK", "update_mask", "cannot update %q", p)
		}
		fd := d.Descriptor().Fields().ByName(protoreflect.Name(p))
		if s.Has(fd) {
			d.Set(fd, s.Get(fd))
		} else {
			d.Clear(fd)
		}
	}
	return nil
}

// get, list, update and remove are the store operations every fake
// service shares; callers hold nothing, these take f.mu.

func get[T any](f *fakeDaemon, m map[string]T, kind, name string) (T, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := m[name]
	if !ok {
		var zero T
		return zero, notFound(kind, "name", name)
	}
	return v, nil
}

// list pages through m's values in name order, keeping those keep accepts
// (nil keeps all).
func list[T any](f *fakeDaemon, m map[string]T, size int32, token string, keep func(T) bool) ([]T, string, error) {
	f.mu.Lock()
	var all []T
	for _, v := range sortedValues(m) {
		if keep == nil || keep(v) {
			all = append(all, v)
		}
	}
	f.mu.Unlock()
	start, end, next, err := f.page(len(all), size, token)
	if err != nil {
		return nil, "", err
	}
	return all[start:end], next, nil
}

// update applies the masked fields of src to the stored object named
// name; field is where the request carries the name.
func update[T proto.Message](f *fakeDaemon, m map[string]T, kind, field, name string, src T, paths, allowed []string) (T, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := m[name]
	if !ok {
		var zero T
		return zero, notFound(kind, field, name)
	}
	next := proto.Clone(cur).(T)
	if err := applyMask(next, src, paths, allowed); err != nil {
		var zero T
		return zero, err
	}
	m[name] = next
	return next, nil
}

func remove[T any](f *fakeDaemon, m map[string]T, kind, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := m[name]; !ok {
		return notFound(kind, "name", name)
	}
	delete(m, name)
	return nil
}

func notFound(kind, field, name string) error {
	return apiError(codes.NotFound, strings.ToUpper(strings.ReplaceAll(kind, " ", "_"))+"_NOT_FOUND", field, "%s %q not found", kind, name)
}

// --- SecretService ---

func (f *fakeDaemon) CreateSecret(_ context.Context, req *mifsecv1.CreateSecretRequest) (*mifsecv1.CreateSecretResponse, error) {
	f.record(req)
	if !idPattern.MatchString(req.GetSecretId()) {
		return nil, apiError(codes.InvalidArgument, "INVALID_ID", "secret_id", "bad secret id %q", req.GetSecretId())
	}
	sec := req.GetSecret()
	if sec.GetType() == mifsecv1.SecretType_SECRET_TYPE_UNSPECIFIED {
		return nil, apiError(codes.InvalidArgument, "INVALID_SECRET_TYPE", "secret.type", "type is required")
	}
	n := len(sec.GetValue()) + len(sec.GetText())
	if n == 0 {
		return nil, apiError(codes.InvalidArgument, "MISSING_FIELD", "secret.text", "text or value is required")
	}
	name := "secrets/" + req.GetSecretId()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.secrets[name]; ok {
		return nil, apiError(codes.AlreadyExists, "ALREADY_EXISTS", "secret_id", "secret %q already exists", name)
	}
	out := &mifsecv1.Secret{Name: name, Type: sec.GetType(), Description: fmt.Sprintf("%d bytes", n), CreateTime: fakeTime}
	f.secrets[name] = out
	return &mifsecv1.CreateSecretResponse{Secret: out}, nil
}

func (f *fakeDaemon) GetSecret(_ context.Context, req *mifsecv1.GetSecretRequest) (*mifsecv1.GetSecretResponse, error) {
	f.record(req)
	v, err := get(f, f.secrets, "secret", req.GetName())
	if err != nil {
		return nil, err
	}
	return &mifsecv1.GetSecretResponse{Secret: v}, nil
}

func (f *fakeDaemon) ListSecrets(_ context.Context, req *mifsecv1.ListSecretsRequest) (*mifsecv1.ListSecretsResponse, error) {
	f.record(req)
	page, next, err := list(f, f.secrets, req.GetPageSize(), req.GetPageToken(), nil)
	if err != nil {
		return nil, err
	}
	return &mifsecv1.ListSecretsResponse{Secrets: page, NextPageToken: next}, nil
}

func (f *fakeDaemon) DeleteSecret(_ context.Context, req *mifsecv1.DeleteSecretRequest) (*mifsecv1.DeleteSecretResponse, error) {
	f.record(req)
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.secrets[req.GetName()]
	if !ok {
		return nil, notFound("secret", "name", req.GetName())
	}
	if len(s.GetUsedBy()) > 0 {
		return nil, apiError(codes.FailedPrecondition, "IN_USE", "name", "secret %q is used by %s", req.GetName(), strings.Join(s.GetUsedBy(), ", "))
	}
	delete(f.secrets, req.GetName())
	return &mifsecv1.DeleteSecretResponse{}, nil
}

// --- PoolService ---

var poolUpdatable = []string{"ranges", "dns_servers", "pcscf_servers"}

func (f *fakeDaemon) CreatePool(_ context.Context, req *mifsecv1.CreatePoolRequest) (*mifsecv1.CreatePoolResponse, error) {
	f.record(req)
	if !idPattern.MatchString(req.GetPoolId()) {
		return nil, apiError(codes.InvalidArgument, "INVALID_ID", "pool_id", "bad pool id %q", req.GetPoolId())
	}
	if len(req.GetPool().GetRanges()) == 0 {
		return nil, apiError(codes.InvalidArgument, "MISSING_FIELD", "pool.ranges", "at least one range is required")
	}
	name := "pools/" + req.GetPoolId()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pools[name]; ok {
		return nil, apiError(codes.AlreadyExists, "ALREADY_EXISTS", "pool_id", "pool %q already exists", name)
	}
	p := proto.Clone(req.GetPool()).(*mifsecv1.Pool)
	p.Name, p.Size, p.CreateTime = name, 254, fakeTime
	f.pools[name] = p
	return &mifsecv1.CreatePoolResponse{Pool: p}, nil
}

func (f *fakeDaemon) GetPool(_ context.Context, req *mifsecv1.GetPoolRequest) (*mifsecv1.GetPoolResponse, error) {
	f.record(req)
	v, err := get(f, f.pools, "pool", req.GetName())
	if err != nil {
		return nil, err
	}
	return &mifsecv1.GetPoolResponse{Pool: v}, nil
}

func (f *fakeDaemon) ListPools(_ context.Context, req *mifsecv1.ListPoolsRequest) (*mifsecv1.ListPoolsResponse, error) {
	f.record(req)
	page, next, err := list(f, f.pools, req.GetPageSize(), req.GetPageToken(), nil)
	if err != nil {
		return nil, err
	}
	return &mifsecv1.ListPoolsResponse{Pools: page, NextPageToken: next}, nil
}

func (f *fakeDaemon) UpdatePool(_ context.Context, req *mifsecv1.UpdatePoolRequest) (*mifsecv1.UpdatePoolResponse, error) {
	f.record(req)
	next, err := update(f, f.pools, "pool", "pool.name", req.GetPool().GetName(), req.GetPool(), req.GetUpdateMask().GetPaths(), poolUpdatable)
	if err != nil {
		return nil, err
	}
	return &mifsecv1.UpdatePoolResponse{Pool: next}, nil
}

func (f *fakeDaemon) DeletePool(_ context.Context, req *mifsecv1.DeletePoolRequest) (*mifsecv1.DeletePoolResponse, error) {
	f.record(req)
	if err := remove(f, f.pools, "pool", req.GetName()); err != nil {
		return nil, err
	}
	return &mifsecv1.DeletePoolResponse{}, nil
}

// --- ConnectionService ---

var connectionUpdatable = []string{"local_id", "remote_id", "local_auth", "remote_auth", "ike_proposals", "esp_proposals",
	"remote_addresses", "local_interfaces", "remote_port", "dpd", "ike_rekey_time", "children",
	"request_virtual_ip4", "request_virtual_ip6", "pool", "mobike", "fragmentation", "multipath"}

func (f *fakeDaemon) CreateConnection(_ context.Context, req *mifsecv1.CreateConnectionRequest) (*mifsecv1.CreateConnectionResponse, error) {
	f.record(req)
	if !idPattern.MatchString(req.GetConnectionId()) {
		return nil, apiError(codes.InvalidArgument, "INVALID_ID", "connection_id", "bad connection id %q", req.GetConnectionId())
	}
	c := proto.Clone(req.GetConnection()).(*mifsecv1.Connection)
	switch {
	case c.GetRole() == mifsecv1.Role_ROLE_UNSPECIFIED:
		return nil, apiError(codes.InvalidArgument, "MISSING_FIELD", "connection.role", "role is required")
	case c.GetLocalAuth() == nil || c.GetRemoteAuth() == nil:
		return nil, apiError(codes.InvalidArgument, "MISSING_FIELD", "connection.local_auth", "both authentications are required")
	}
	name := "connections/" + req.GetConnectionId()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.conns[name]; ok {
		return nil, apiError(codes.AlreadyExists, "ALREADY_EXISTS", "connection_id", "connection %q already exists", name)
	}
	if p := c.GetLocalAuth().GetPskSecret(); p != "" && f.secrets[p] == nil {
		return nil, apiError(codes.FailedPrecondition, "SECRET_NOT_FOUND", "connection.local_auth.psk_secret", "secret %q not found", p)
	}
	c.Name, c.State, c.CreateTime, c.UpdateTime = name, mifsecv1.ConnectionState_CONNECTION_STATE_IDLE, fakeTime, fakeTime
	f.conns[name] = c
	return &mifsecv1.CreateConnectionResponse{Connection: c}, nil
}

func (f *fakeDaemon) GetConnection(_ context.Context, req *mifsecv1.GetConnectionRequest) (*mifsecv1.GetConnectionResponse, error) {
	f.record(req)
	v, err := get(f, f.conns, "connection", req.GetName())
	if err != nil {
		return nil, err
	}
	return &mifsecv1.GetConnectionResponse{Connection: v}, nil
}

func (f *fakeDaemon) ListConnections(_ context.Context, req *mifsecv1.ListConnectionsRequest) (*mifsecv1.ListConnectionsResponse, error) {
	f.record(req)
	page, next, err := list(f, f.conns, req.GetPageSize(), req.GetPageToken(), nil)
	if err != nil {
		return nil, err
	}
	return &mifsecv1.ListConnectionsResponse{Connections: page, NextPageToken: next}, nil
}

func (f *fakeDaemon) UpdateConnection(_ context.Context, req *mifsecv1.UpdateConnectionRequest) (*mifsecv1.UpdateConnectionResponse, error) {
	f.record(req)
	next, err := update(f, f.conns, "connection", "connection.name", req.GetConnection().GetName(), req.GetConnection(), req.GetUpdateMask().GetPaths(), connectionUpdatable)
	if err != nil {
		return nil, err
	}
	return &mifsecv1.UpdateConnectionResponse{Connection: next}, nil
}

func (f *fakeDaemon) DeleteConnection(_ context.Context, req *mifsecv1.DeleteConnectionRequest) (*mifsecv1.DeleteConnectionResponse, error) {
	f.record(req)
	if err := remove(f, f.conns, "connection", req.GetName()); err != nil {
		return nil, err
	}
	return &mifsecv1.DeleteConnectionResponse{}, nil
}

// fakeIKESPI is the initiator SPI of the IKE SA InitiateConnection makes.
const fakeIKESPI = "0123456789abcdef"

func (f *fakeDaemon) InitiateConnection(_ context.Context, req *mifsecv1.InitiateConnectionRequest) (*mifsecv1.InitiateConnectionResponse, error) {
	f.record(req)
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.conns[req.GetName()]
	if !ok {
		return nil, notFound("connection", "name", req.GetName())
	}
	if c.GetRole() != mifsecv1.Role_ROLE_INITIATOR {
		return nil, apiError(codes.FailedPrecondition, "NOT_INITIATOR", "name", "connection %q is a responder", req.GetName())
	}
	ike := req.GetName() + "/ikeSas/" + fakeIKESPI
	f.ikeSAs[ike] = &mifsecv1.IkeSa{Name: ike, State: mifsecv1.IkeSaState_IKE_SA_STATE_ESTABLISHED, Role: mifsecv1.Role_ROLE_INITIATOR,
		InitiatorSpi: fakeIKESPI, ResponderSpi: "fedcba9876543210", EstablishTime: fakeTime}
	c.IkeSas = append(c.IkeSas, ike)
	c.State = mifsecv1.ConnectionState_CONNECTION_STATE_ESTABLISHED
	return &mifsecv1.InitiateConnectionResponse{IkeSa: ike}, nil
}

func (f *fakeDaemon) TerminateConnection(_ context.Context, req *mifsecv1.TerminateConnectionRequest) (*mifsecv1.TerminateConnectionResponse, error) {
	f.record(req)
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.conns[req.GetName()]
	if !ok {
		return nil, notFound("connection", "name", req.GetName())
	}
	for _, ike := range c.GetIkeSas() {
		f.dropIKESA(ike)
	}
	c.IkeSas, c.State = nil, mifsecv1.ConnectionState_CONNECTION_STATE_IDLE
	return &mifsecv1.TerminateConnectionResponse{}, nil
}

// --- SecurityAssociationService ---

// dropIKESA deletes an IKE SA and its children; f.mu is held.
func (f *fakeDaemon) dropIKESA(name string) {
	delete(f.ikeSAs, name)
	for n := range f.childSAs {
		if strings.HasPrefix(n, name+"/childSas/") {
			delete(f.childSAs, n)
		}
	}
}

// matchParent reports whether name is under parent, where a parent
// segment "-" matches any (AIP-159).
func matchParent(parent, name string) bool {
	p, n := strings.Split(parent, "/"), strings.Split(name, "/")
	if len(n) < len(p) {
		return false
	}
	for i := range p {
		if p[i] != "-" && p[i] != n[i] {
			return false
		}
	}
	return true
}

func (f *fakeDaemon) ListIkeSas(_ context.Context, req *mifsecv1.ListIkeSasRequest) (*mifsecv1.ListIkeSasResponse, error) {
	f.record(req)
	if p := strings.Split(req.GetParent(), "/"); len(p) != 2 || p[0] != "connections" {
		return nil, apiError(codes.InvalidArgument, "INVALID_NAME", "parent", "must be connections/{c} or connections/-")
	}
	page, next, err := list(f, f.ikeSAs, req.GetPageSize(), req.GetPageToken(),
		func(s *mifsecv1.IkeSa) bool { return matchParent(req.GetParent(), s.GetName()) })
	if err != nil {
		return nil, err
	}
	return &mifsecv1.ListIkeSasResponse{IkeSas: page, NextPageToken: next}, nil
}

func (f *fakeDaemon) GetIkeSa(_ context.Context, req *mifsecv1.GetIkeSaRequest) (*mifsecv1.GetIkeSaResponse, error) {
	f.record(req)
	v, err := get(f, f.ikeSAs, "IKE SA", req.GetName())
	if err != nil {
		return nil, err
	}
	return &mifsecv1.GetIkeSaResponse{IkeSa: v}, nil
}

// RekeyIkeSa replaces the IKE SA by one whose SPI is the old one reversed.
func (f *fakeDaemon) RekeyIkeSa(_ context.Context, req *mifsecv1.RekeyIkeSaRequest) (*mifsecv1.RekeyIkeSaResponse, error) {
	f.record(req)
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.ikeSAs[req.GetName()]
	if !ok {
		return nil, notFound("IKE SA", "name", req.GetName())
	}
	spi := []byte(s.GetInitiatorSpi())
	slices.Reverse(spi)
	n := proto.Clone(s).(*mifsecv1.IkeSa)
	n.InitiatorSpi = string(spi)
	n.Name = req.GetName()[:strings.LastIndexByte(req.GetName(), '/')+1] + n.InitiatorSpi
	delete(f.ikeSAs, req.GetName())
	f.ikeSAs[n.Name] = n
	return &mifsecv1.RekeyIkeSaResponse{IkeSa: n}, nil
}

func (f *fakeDaemon) TerminateIkeSa(_ context.Context, req *mifsecv1.TerminateIkeSaRequest) (*mifsecv1.TerminateIkeSaResponse, error) {
	f.record(req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ikeSAs[req.GetName()]; !ok {
		return nil, notFound("IKE SA", "name", req.GetName())
	}
	f.dropIKESA(req.GetName())
	return &mifsecv1.TerminateIkeSaResponse{}, nil
}

func (f *fakeDaemon) ListChildSas(_ context.Context, req *mifsecv1.ListChildSasRequest) (*mifsecv1.ListChildSasResponse, error) {
	f.record(req)
	if p := strings.Split(req.GetParent(), "/"); len(p) != 4 || p[0] != "connections" || p[2] != "ikeSas" {
		return nil, apiError(codes.InvalidArgument, "INVALID_NAME", "parent", "must be connections/{c}/ikeSas/{spi}")
	}
	page, next, err := list(f, f.childSAs, req.GetPageSize(), req.GetPageToken(),
		func(s *mifsecv1.ChildSa) bool { return matchParent(req.GetParent(), s.GetName()) })
	if err != nil {
		return nil, err
	}
	return &mifsecv1.ListChildSasResponse{ChildSas: page, NextPageToken: next}, nil
}

func (f *fakeDaemon) GetChildSa(_ context.Context, req *mifsecv1.GetChildSaRequest) (*mifsecv1.GetChildSaResponse, error) {
	f.record(req)
	v, err := get(f, f.childSAs, "Child SA", req.GetName())
	if err != nil {
		return nil, err
	}
	return &mifsecv1.GetChildSaResponse{ChildSa: v}, nil
}

// RekeyChildSa replaces the Child SA by one with the next inbound SPI.
func (f *fakeDaemon) RekeyChildSa(_ context.Context, req *mifsecv1.RekeyChildSaRequest) (*mifsecv1.RekeyChildSaResponse, error) {
	f.record(req)
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.childSAs[req.GetName()]
	if !ok {
		return nil, notFound("Child SA", "name", req.GetName())
	}
	spi, err := strconv.ParseUint(s.GetSpiIn(), 16, 32)
	if err != nil {
		return nil, apiError(codes.Internal, "BAD_SPI", "", "fake: %v", err)
	}
	n := proto.Clone(s).(*mifsecv1.ChildSa)
	n.SpiIn = fmt.Sprintf("%08x", spi+1)
	n.Name = req.GetName()[:strings.LastIndexByte(req.GetName(), '/')+1] + n.SpiIn
	n.BytesIn, n.BytesOut = 0, 0
	delete(f.childSAs, req.GetName())
	f.childSAs[n.Name] = n
	return &mifsecv1.RekeyChildSaResponse{ChildSa: n}, nil
}

func (f *fakeDaemon) TerminateChildSa(_ context.Context, req *mifsecv1.TerminateChildSaRequest) (*mifsecv1.TerminateChildSaResponse, error) {
	f.record(req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.childSAs[req.GetName()]; !ok {
		return nil, notFound("Child SA", "name", req.GetName())
	}
	delete(f.childSAs, req.GetName())
	return &mifsecv1.TerminateChildSaResponse{}, nil
}

// seedSAs stores IKE SAs and Child SAs as the daemon would report them.
func (f *fakeDaemon) seedSAs(ikes []*mifsecv1.IkeSa, children []*mifsecv1.ChildSa) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range ikes {
		f.ikeSAs[s.GetName()] = s
	}
	for _, s := range children {
		f.childSAs[s.GetName()] = s
	}
}
