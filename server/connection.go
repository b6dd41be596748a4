package server

import (
	"context"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/dataplane"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

const connections = "connections"

type connectionService struct {
	mifsecv1.UnimplementedConnectionServiceServer
	s *Server
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func dur(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

var modeToProto = map[dataplane.Mode]mifsecv1.IpsecMode{
	dataplane.Tunnel:    mifsecv1.IpsecMode_IPSEC_MODE_TUNNEL,
	dataplane.Transport: mifsecv1.IpsecMode_IPSEC_MODE_TRANSPORT,
}

var startToProto = map[engine.StartAction]mifsecv1.StartAction{
	engine.StartNone:  mifsecv1.StartAction_START_ACTION_NONE,
	engine.StartStart: mifsecv1.StartAction_START_ACTION_START,
	engine.StartTrap:  mifsecv1.StartAction_START_ACTION_TRAP,
}

var roleToProto = map[engine.Role]mifsecv1.Role{
	engine.RoleInitiator: mifsecv1.Role_ROLE_INITIATOR,
	engine.RoleResponder: mifsecv1.Role_ROLE_RESPONDER,
}

var connStateToProto = map[engine.ConnState]mifsecv1.ConnectionState{
	engine.ConnIdle:        mifsecv1.ConnectionState_CONNECTION_STATE_IDLE,
	engine.ConnConnecting:  mifsecv1.ConnectionState_CONNECTION_STATE_CONNECTING,
	engine.ConnEstablished: mifsecv1.ConnectionState_CONNECTION_STATE_ESTABLISHED,
}

// reverse finds the key of v in m.
func reverse[K comparable, V comparable](m map[K]V, v V) (K, bool) {
	for k, x := range m {
		if x == v {
			return k, true
		}
	}
	var zero K
	return zero, false
}

func authToProto(a engine.AuthSpec) *mifsecv1.Authentication {
	switch {
	case a.PSKSecret != "":
		return &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: secrets + "/" + a.PSKSecret}}
	case a.CertPEM != "" || a.KeySecret != "" || a.CAPEM != "":
		c := &mifsecv1.CertificateAuth{CertificatePem: a.CertPEM, CaPem: a.CAPEM}
		if a.KeySecret != "" {
			c.KeySecret = secrets + "/" + a.KeySecret
		}
		return &mifsecv1.Authentication{Method: &mifsecv1.Authentication_Certificate{Certificate: c}}
	}
	return nil
}

func authFromProto(p *mifsecv1.Authentication, field string) (engine.AuthSpec, error) {
	var a engine.AuthSpec
	switch m := p.GetMethod().(type) {
	case *mifsecv1.Authentication_PskSecret:
		id, err := parseName(m.PskSecret, secrets, field+".psk_secret")
		if err != nil {
			return a, err
		}
		a.PSKSecret = id
	case *mifsecv1.Authentication_Certificate:
		a.CertPEM, a.CAPEM = m.Certificate.GetCertificatePem(), m.Certificate.GetCaPem()
		if k := m.Certificate.GetKeySecret(); k != "" {
			id, err := parseName(k, secrets, field+".certificate.key_secret")
			if err != nil {
				return a, err
			}
			a.KeySecret = id
		}
	}
	return a, nil
}

func connectionToProto(in engine.ConnectionInfo) *mifsecv1.Connection {
	s := in.ConnectionSpec
	p := &mifsecv1.Connection{
		Name: connections + "/" + in.ID, Role: roleToProto[s.Role], LocalId: s.LocalID, RemoteId: s.RemoteID,
		LocalAuth: authToProto(s.LocalAuth), RemoteAuth: authToProto(s.RemoteAuth),
		IkeProposals: s.IKEProposals, EspProposals: s.ESPProposals, RemoteAddresses: s.RemoteAddrs,
		RemotePort: uint32(s.RemotePort), IkeRekeyTime: dur(s.IKERekeyTime),
		RequestVirtualIp4: s.VirtualIP4, RequestVirtualIp6: s.VirtualIP6,
		Mobike: &s.MOBIKE, Fragmentation: &s.Fragmentation, Multipath: s.Multipath,
		State: connStateToProto[in.State], CreateTime: ts(in.CreateTime), UpdateTime: ts(in.UpdateTime),
	}
	for _, i := range s.LocalInterfaces {
		p.LocalInterfaces = append(p.LocalInterfaces, interfaces+"/"+i)
	}
	if s.DPDInterval != 0 || s.DPDTimeout != 0 {
		p.Dpd = &mifsecv1.Dpd{Interval: dur(s.DPDInterval), Timeout: dur(s.DPDTimeout)}
	}
	if s.Pool != "" {
		p.Pool = pools + "/" + s.Pool
	}
	for _, c := range s.Children {
		p.Children = append(p.Children, &mifsecv1.Child{Name: c.Name, LocalTs: c.LocalTS, RemoteTs: c.RemoteTS,
			EspProposals: c.ESPProposals, Mode: modeToProto[c.Mode], StartAction: startToProto[c.StartAction],
			RekeyTime: dur(c.RekeyTime), RekeyBytes: c.RekeyBytes, RekeyPackets: c.RekeyPackets})
	}
	for _, sa := range in.IKESAs {
		p.IkeSas = append(p.IkeSas, connections+"/"+in.ID+"/ikeSas/"+sa)
	}
	return p
}

// connectionSpecFromProto converts the configurable fields; enums are
// checked here (the engine checks everything else).
func connectionSpecFromProto(p *mifsecv1.Connection) (engine.ConnectionSpec, error) {
	s := engine.ConnectionSpec{LocalID: p.GetLocalId(), RemoteID: p.GetRemoteId(),
		IKEProposals: p.GetIkeProposals(), ESPProposals: p.GetEspProposals(), RemoteAddrs: p.GetRemoteAddresses(),
		VirtualIP4: p.GetRequestVirtualIp4(), VirtualIP6: p.GetRequestVirtualIp6(),
		MOBIKE: p.Mobike == nil || p.GetMobike(), Fragmentation: p.Fragmentation == nil || p.GetFragmentation(),
		Multipath: p.GetMultipath()}
	if p.GetRole() != mifsecv1.Role_ROLE_UNSPECIFIED {
		r, ok := reverse(roleToProto, p.GetRole())
		if !ok {
			return s, invalid("INVALID_ROLE", "connection.role", "must be ROLE_INITIATOR or ROLE_RESPONDER")
		}
		s.Role = r
	}
	var err error
	if s.LocalAuth, err = authFromProto(p.GetLocalAuth(), "connection.local_auth"); err != nil {
		return s, err
	}
	if s.RemoteAuth, err = authFromProto(p.GetRemoteAuth(), "connection.remote_auth"); err != nil {
		return s, err
	}
	if p.GetRemotePort() > 65535 {
		return s, invalid("INVALID_PORT", "connection.remote_port", "must be at most 65535")
	}
	s.RemotePort = uint16(p.GetRemotePort())
	for i, n := range p.GetLocalInterfaces() {
		id, err := parseName(n, interfaces, "connection.local_interfaces["+itoa(i)+"]")
		if err != nil {
			return s, err
		}
		s.LocalInterfaces = append(s.LocalInterfaces, id)
	}
	s.DPDInterval, s.DPDTimeout = p.GetDpd().GetInterval().AsDuration(), p.GetDpd().GetTimeout().AsDuration()
	s.IKERekeyTime = p.GetIkeRekeyTime().AsDuration()
	if p.GetPool() != "" {
		id, err := parseName(p.GetPool(), pools, "connection.pool")
		if err != nil {
			return s, err
		}
		s.Pool = id
	}
	for i, c := range p.GetChildren() {
		field := "connection.children[" + itoa(i) + "]"
		ch := engine.ChildSpec{Name: c.GetName(), LocalTS: c.GetLocalTs(), RemoteTS: c.GetRemoteTs(), ESPProposals: c.GetEspProposals(),
			RekeyTime: c.GetRekeyTime().AsDuration(), RekeyBytes: c.GetRekeyBytes(), RekeyPackets: c.GetRekeyPackets()}
		if c.GetMode() != mifsecv1.IpsecMode_IPSEC_MODE_UNSPECIFIED {
			m, ok := reverse(modeToProto, c.GetMode())
			if !ok {
				return s, invalid("INVALID_MODE", field+".mode", "must be IPSEC_MODE_TUNNEL or IPSEC_MODE_TRANSPORT")
			}
			ch.Mode = m
		}
		if c.GetStartAction() != mifsecv1.StartAction_START_ACTION_UNSPECIFIED {
			a, ok := reverse(startToProto, c.GetStartAction())
			if !ok {
				return s, invalid("INVALID_START_ACTION", field+".start_action", "unknown start action")
			}
			ch.StartAction = a
		}
		s.Children = append(s.Children, ch)
	}
	return s, nil
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// maskFields validates an update mask against the allowed fields; empty or
// "*" selects them all.
func maskFields(paths, allowed []string) ([]string, error) {
	var fields []string
	for _, p := range paths {
		if p == "*" {
			if len(paths) != 1 {
				return nil, invalid(engine.ReasonInvalidFieldMask, "update_mask", "'*' must be the only path")
			}
			return nil, nil
		}
		if !slices.Contains(allowed, p) {
			return nil, invalid(engine.ReasonInvalidFieldMask, "update_mask", "unknown or immutable field "+quote(p)+" (allowed: "+strings.Join(allowed, ", ")+")")
		}
		fields = append(fields, p)
	}
	return fields, nil
}

func (h *connectionService) CreateConnection(ctx context.Context, req *mifsecv1.CreateConnectionRequest) (*mifsecv1.CreateConnectionResponse, error) {
	if req.GetConnection() == nil {
		return nil, invalid("MISSING_FIELD", "connection", "required")
	}
	spec, err := connectionSpecFromProto(req.GetConnection())
	if err != nil {
		return nil, err
	}
	in, err := h.s.e.CreateConnection(ctx, req.GetConnectionId(), spec)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.CreateConnectionResponse{Connection: connectionToProto(in)}, nil
}

func (h *connectionService) GetConnection(ctx context.Context, req *mifsecv1.GetConnectionRequest) (*mifsecv1.GetConnectionResponse, error) {
	id, err := parseName(req.GetName(), connections, "name")
	if err != nil {
		return nil, err
	}
	in, err := h.s.e.GetConnection(ctx, id)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.GetConnectionResponse{Connection: connectionToProto(in)}, nil
}

func (h *connectionService) ListConnections(ctx context.Context, req *mifsecv1.ListConnectionsRequest) (*mifsecv1.ListConnectionsResponse, error) {
	resp := &mifsecv1.ListConnectionsResponse{}
	var err error
	resp.NextPageToken, err = list(h.s, ctx, connections, req.GetPageSize(), req.GetPageToken(), h.s.e.ListConnections,
		func(in engine.ConnectionInfo) string { return in.ID },
		func(in engine.ConnectionInfo) { resp.Connections = append(resp.Connections, connectionToProto(in)) })
	return resp, err
}

func (h *connectionService) UpdateConnection(ctx context.Context, req *mifsecv1.UpdateConnectionRequest) (*mifsecv1.UpdateConnectionResponse, error) {
	if req.GetConnection() == nil {
		return nil, invalid("MISSING_FIELD", "connection", "required")
	}
	id, err := parseName(req.GetConnection().GetName(), connections, "connection.name")
	if err != nil {
		return nil, err
	}
	fields, err := maskFields(req.GetUpdateMask().GetPaths(), engine.ConnectionFields)
	if err != nil {
		return nil, err
	}
	spec, err := connectionSpecFromProto(req.GetConnection())
	if err != nil {
		return nil, err
	}
	in, err := h.s.e.UpdateConnection(ctx, id, spec, fields)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.UpdateConnectionResponse{Connection: connectionToProto(in)}, nil
}

func (h *connectionService) DeleteConnection(ctx context.Context, req *mifsecv1.DeleteConnectionRequest) (*mifsecv1.DeleteConnectionResponse, error) {
	id, err := parseName(req.GetName(), connections, "name")
	if err != nil {
		return nil, err
	}
	if err := h.s.e.DeleteConnection(ctx, id); err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.DeleteConnectionResponse{}, nil
}
