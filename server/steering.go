package server

import (
	"context"

	"github.com/mifsec/mifsec/engine"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

const steeringRules = "steeringRules"

type steeringService struct {
	mifsecv1.UnimplementedSteeringServiceServer
	s *Server
}

var steerModeToProto = map[engine.SteeringMode]mifsecv1.SteeringMode{
	engine.SteerActiveStandby: mifsecv1.SteeringMode_STEERING_MODE_ACTIVE_STANDBY,
	engine.SteerPriority:      mifsecv1.SteeringMode_STEERING_MODE_PRIORITY,
	engine.SteerLoadBalance:   mifsecv1.SteeringMode_STEERING_MODE_LOAD_BALANCE,
	engine.SteerSmallestDelay: mifsecv1.SteeringMode_STEERING_MODE_SMALLEST_DELAY,
}

func pathName(p engine.PathRef) string { return connections + "/" + p.Conn + "/paths/" + p.ID }

func steeringToProto(r engine.SteeringRule) *mifsecv1.SteeringRule {
	m := r.Match
	p := &mifsecv1.SteeringRule{Name: steeringRules + "/" + r.ID, Mode: steerModeToProto[r.Mode], Precedence: r.Precedence,
		ProbeInterval: dur(r.ProbeInterval), CreateTime: ts(r.CreateTime), UpdateTime: ts(r.UpdateTime),
		Match: &mifsecv1.FlowMatch{SourcePrefixes: m.Sources, DestinationPrefixes: m.Destinations, Protocol: m.Protocol, Dscp: m.DSCP}}
	if m.SourcePorts != (engine.PortRange{}) {
		p.Match.SourcePorts = &mifsecv1.PortRange{First: m.SourcePorts.First, Last: m.SourcePorts.Last}
	}
	if m.DestinationPorts != (engine.PortRange{}) {
		p.Match.DestinationPorts = &mifsecv1.PortRange{First: m.DestinationPorts.First, Last: m.DestinationPorts.Last}
	}
	if m.Connection != "" {
		p.Match.Connection = connections + "/" + m.Connection
	}
	for _, t := range r.Targets {
		pt := &mifsecv1.SteeringTarget{Weight: t.Weight}
		if t.Interface != "" {
			pt.Target = &mifsecv1.SteeringTarget_Interface{Interface: interfaces + "/" + t.Interface}
		} else {
			pt.Target = &mifsecv1.SteeringTarget_AccessType{AccessType: accessToProto[t.AccessType]}
		}
		p.Targets = append(p.Targets, pt)
	}
	for _, a := range r.ActivePaths {
		p.ActivePaths = append(p.ActivePaths, pathName(a))
	}
	return p
}

// steeringSpecFromProto converts the configurable fields; names and enums
// are checked here, everything else by the engine.
func steeringSpecFromProto(p *mifsecv1.SteeringRule) (engine.SteeringSpec, error) {
	const f = "steering_rule."
	m := p.GetMatch()
	s := engine.SteeringSpec{Precedence: p.GetPrecedence(), ProbeInterval: p.GetProbeInterval().AsDuration(),
		Match: engine.FlowMatch{Sources: m.GetSourcePrefixes(), Destinations: m.GetDestinationPrefixes(), Protocol: m.GetProtocol(),
			SourcePorts:      engine.PortRange{First: m.GetSourcePorts().GetFirst(), Last: m.GetSourcePorts().GetLast()},
			DestinationPorts: engine.PortRange{First: m.GetDestinationPorts().GetFirst(), Last: m.GetDestinationPorts().GetLast()},
			DSCP:             m.GetDscp()}}
	if p.GetMode() != mifsecv1.SteeringMode_STEERING_MODE_UNSPECIFIED {
		mode, ok := reverse(steerModeToProto, p.GetMode())
		if !ok {
			return s, invalid("INVALID_STEERING_MODE", f+"mode", "unknown steering mode")
		}
		s.Mode = mode
	}
	if c := m.GetConnection(); c != "" {
		id, err := parseName(c, connections, f+"match.connection")
		if err != nil {
			return s, err
		}
		s.Match.Connection = id
	}
	for i, t := range p.GetTargets() {
		field := f + "targets[" + itoa(i) + "]"
		et := engine.SteeringTarget{Weight: t.GetWeight()}
		switch x := t.GetTarget().(type) {
		case *mifsecv1.SteeringTarget_Interface:
			id, err := parseName(x.Interface, interfaces, field+".interface")
			if err != nil {
				return s, err
			}
			et.Interface = id
		case *mifsecv1.SteeringTarget_AccessType:
			a, err := accessFromProto(x.AccessType, field+".access_type")
			if err != nil {
				return s, err
			}
			et.AccessType = a
		}
		s.Targets = append(s.Targets, et)
	}
	return s, nil
}

func (h *steeringService) CreateSteeringRule(ctx context.Context, req *mifsecv1.CreateSteeringRuleRequest) (*mifsecv1.CreateSteeringRuleResponse, error) {
	if req.GetSteeringRule() == nil {
		return nil, invalid("MISSING_FIELD", "steering_rule", "required")
	}
	spec, err := steeringSpecFromProto(req.GetSteeringRule())
	if err != nil {
		return nil, err
	}
	r, err := h.s.e.CreateSteeringRule(ctx, req.GetSteeringRuleId(), spec)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.CreateSteeringRuleResponse{SteeringRule: steeringToProto(r)}, nil
}

func (h *steeringService) GetSteeringRule(ctx context.Context, req *mifsecv1.GetSteeringRuleRequest) (*mifsecv1.GetSteeringRuleResponse, error) {
	id, err := parseName(req.GetName(), steeringRules, "name")
	if err != nil {
		return nil, err
	}
	r, err := h.s.e.GetSteeringRule(ctx, id)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.GetSteeringRuleResponse{SteeringRule: steeringToProto(r)}, nil
}

func (h *steeringService) ListSteeringRules(ctx context.Context, req *mifsecv1.ListSteeringRulesRequest) (*mifsecv1.ListSteeringRulesResponse, error) {
	resp := &mifsecv1.ListSteeringRulesResponse{}
	var err error
	resp.NextPageToken, err = list(h.s, ctx, steeringRules, req.GetPageSize(), req.GetPageToken(), h.s.e.ListSteeringRules,
		func(r engine.SteeringRule) string { return r.ID },
		func(r engine.SteeringRule) { resp.SteeringRules = append(resp.SteeringRules, steeringToProto(r)) })
	return resp, err
}

func (h *steeringService) UpdateSteeringRule(ctx context.Context, req *mifsecv1.UpdateSteeringRuleRequest) (*mifsecv1.UpdateSteeringRuleResponse, error) {
	if req.GetSteeringRule() == nil {
		return nil, invalid("MISSING_FIELD", "steering_rule", "required")
	}
	id, err := parseName(req.GetSteeringRule().GetName(), steeringRules, "steering_rule.name")
	if err != nil {
		return nil, err
	}
	fields, err := maskFields(req.GetUpdateMask().GetPaths(), engine.SteeringFields)
	if err != nil {
		return nil, err
	}
	spec, err := steeringSpecFromProto(req.GetSteeringRule())
	if err != nil {
		return nil, err
	}
	r, err := h.s.e.UpdateSteeringRule(ctx, id, spec, fields)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.UpdateSteeringRuleResponse{SteeringRule: steeringToProto(r)}, nil
}

func (h *steeringService) DeleteSteeringRule(ctx context.Context, req *mifsecv1.DeleteSteeringRuleRequest) (*mifsecv1.DeleteSteeringRuleResponse, error) {
	id, err := parseName(req.GetName(), steeringRules, "name")
	if err != nil {
		return nil, err
	}
	if err := h.s.e.DeleteSteeringRule(ctx, id); err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.DeleteSteeringRuleResponse{}, nil
}
