package main

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// The fake SteeringService, ConnectionService.ListPaths and
// SecurityAssociationService.MigrateIkeSa.

var steeringUpdatable = []string{"match", "mode", "precedence", "targets", "probe_interval"}

func (f *fakeDaemon) CreateSteeringRule(_ context.Context, req *mifsecv1.CreateSteeringRuleRequest) (*mifsecv1.CreateSteeringRuleResponse, error) {
	f.record(req)
	if !idPattern.MatchString(req.GetSteeringRuleId()) {
		return nil, apiError(codes.InvalidArgument, "INVALID_ID", "steering_rule_id", "bad steering rule id %q", req.GetSteeringRuleId())
	}
	r := proto.Clone(req.GetSteeringRule()).(*mifsecv1.SteeringRule)
	if r.GetMode() == mifsecv1.SteeringMode_STEERING_MODE_UNSPECIFIED {
		return nil, apiError(codes.InvalidArgument, "MISSING_FIELD", "steering_rule.mode", "mode is required")
	}
	name := "steeringRules/" + req.GetSteeringRuleId()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.rules[name]; ok {
		return nil, apiError(codes.AlreadyExists, "ALREADY_EXISTS", "steering_rule_id", "steering rule %q already exists", name)
	}
	r.Name, r.CreateTime, r.UpdateTime = name, fakeTime, fakeTime
	f.rules[name] = r
	return &mifsecv1.CreateSteeringRuleResponse{SteeringRule: r}, nil
}

func (f *fakeDaemon) GetSteeringRule(_ context.Context, req *mifsecv1.GetSteeringRuleRequest) (*mifsecv1.GetSteeringRuleResponse, error) {
	f.record(req)
	v, err := get(f, f.rules, "steering rule", req.GetName())
	if err != nil {
		return nil, err
	}
	return &mifsecv1.GetSteeringRuleResponse{SteeringRule: v}, nil
}

func (f *fakeDaemon) ListSteeringRules(_ context.Context, req *mifsecv1.ListSteeringRulesRequest) (*mifsecv1.ListSteeringRulesResponse, error) {
	f.record(req)
	page, next, err := list(f, f.rules, req.GetPageSize(), req.GetPageToken(), nil)
	if err != nil {
		return nil, err
	}
	return &mifsecv1.ListSteeringRulesResponse{SteeringRules: page, NextPageToken: next}, nil
}

func (f *fakeDaemon) UpdateSteeringRule(_ context.Context, req *mifsecv1.UpdateSteeringRuleRequest) (*mifsecv1.UpdateSteeringRuleResponse, error) {
	f.record(req)
	next, err := update(f, f.rules, "steering rule", "steering_rule.name", req.GetSteeringRule().GetName(), req.GetSteeringRule(), req.GetUpdateMask().GetPaths(), steeringUpdatable)
	if err != nil {
		return nil, err
	}
	return &mifsecv1.UpdateSteeringRuleResponse{SteeringRule: next}, nil
}

func (f *fakeDaemon) DeleteSteeringRule(_ context.Context, req *mifsecv1.DeleteSteeringRuleRequest) (*mifsecv1.DeleteSteeringRuleResponse, error) {
	f.record(req)
	if err := remove(f, f.rules, "steering rule", req.GetName()); err != nil {
		return nil, err
	}
	return &mifsecv1.DeleteSteeringRuleResponse{}, nil
}

func (f *fakeDaemon) ListPaths(_ context.Context, req *mifsecv1.ListPathsRequest) (*mifsecv1.ListPathsResponse, error) {
	f.record(req)
	if p := strings.Split(req.GetParent(), "/"); len(p) != 2 || p[0] != "connections" {
		return nil, apiError(codes.InvalidArgument, "INVALID_NAME", "parent", "must be connections/{c} or connections/-")
	}
	f.mu.Lock()
	var all []*mifsecv1.Path
	for _, p := range sortedValues(f.paths) {
		if matchParent(req.GetParent(), p.GetName()) {
			all = append(all, p)
		}
	}
	f.mu.Unlock()
	start, end, next, err := f.page(len(all), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &mifsecv1.ListPathsResponse{Paths: all[start:end], NextPageToken: next}, nil
}

// MigrateIkeSa moves the IKE SA to the path's or interface's first
// address; a path of another connection is refused as the daemon does.
func (f *fakeDaemon) MigrateIkeSa(_ context.Context, req *mifsecv1.MigrateIkeSaRequest) (*mifsecv1.MigrateIkeSaResponse, error) {
	f.record(req)
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.ikeSAs[req.GetName()]
	if !ok {
		return nil, notFound("IKE SA", "name", req.GetName())
	}
	n := proto.Clone(s).(*mifsecv1.IkeSa)
	switch t := req.GetTarget().(type) {
	case *mifsecv1.MigrateIkeSaRequest_Path:
		p, ok := f.paths[t.Path]
		conn := strings.Join(strings.Split(req.GetName(), "/")[:2], "/")
		if !ok || !strings.HasPrefix(t.Path, conn+"/") {
			return nil, apiError(codes.FailedPrecondition, "PATH_NOT_FOUND", "path", "path %q is not a path of %s", t.Path, conn)
		}
		n.LocalAddress, n.RemoteAddress = p.GetLocalAddress(), p.GetRemoteAddress()
	case *mifsecv1.MigrateIkeSaRequest_Interface:
		i, ok := f.ifaces[t.Interface]
		if !ok || len(i.GetAddresses()) == 0 {
			return nil, apiError(codes.FailedPrecondition, "NO_ADDRESS", "interface", "interface %q has no address", t.Interface)
		}
		n.LocalAddress = strings.Split(i.GetAddresses()[0], "/")[0] + ":4500"
	default:
		return nil, apiError(codes.InvalidArgument, "MISSING_FIELD", "target", "interface or path is required")
	}
	f.ikeSAs[n.GetName()] = n
	return &mifsecv1.MigrateIkeSaResponse{IkeSa: n}, nil
}
