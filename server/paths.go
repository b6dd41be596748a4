package server

import (
	"context"
	"strings"

	"github.com/mifsec/mifsec/engine"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

var pathStateToProto = map[engine.PathState]mifsecv1.PathState{
	engine.PathDown:       mifsecv1.PathState_PATH_STATE_DOWN,
	engine.PathConnecting: mifsecv1.PathState_PATH_STATE_CONNECTING,
	engine.PathUp:         mifsecv1.PathState_PATH_STATE_UP,
	engine.PathSilent:     mifsecv1.PathState_PATH_STATE_SILENT,
}

func pathToProto(v engine.PathView) *mifsecv1.Path {
	p := &mifsecv1.Path{Name: pathName(engine.PathRef{Conn: v.Conn, ID: v.ID}), State: pathStateToProto[v.State],
		DownReason: v.DownReason, LocalNat: v.NATLocal, RemoteNat: v.NATRemote, Rtt: dur(v.RTT), Loss: v.Loss,
		Probes: v.Probes, ProbesLost: v.Lost, VerifyTime: ts(v.LastVerified),
		BytesIn: v.In.Bytes, BytesOut: v.Out.Bytes, PacketsIn: v.In.Packets, PacketsOut: v.Out.Packets}
	if v.Interface != "" && engine.ValidID(v.Interface) == nil {
		p.Interface = interfaces + "/" + v.Interface
	}
	if v.IKESA != "" {
		p.IkeSa = connections + "/" + v.Conn + "/ikeSas/" + v.IKESA
	}
	if v.Local.IsValid() {
		p.LocalAddress = v.Local.String()
	}
	if v.Remote.IsValid() {
		p.RemoteAddress = v.Remote.String()
	}
	return p
}

// parsePathName splits connections/{c}/paths/{id}.
func parsePathName(name, field string) (conn, id string, err error) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != connections || parts[2] != "paths" || engine.ValidID(parts[1]) != nil || engine.ValidID(parts[3]) != nil {
		return "", "", invalid("INVALID_NAME", field, "must be of the form connections/{c}/paths/{id}")
	}
	return parts[1], parts[3], nil
}

func (h *connectionService) ListPaths(ctx context.Context, req *mifsecv1.ListPathsRequest) (*mifsecv1.ListPathsResponse, error) {
	conn, ok := strings.CutPrefix(req.GetParent(), connections+"/")
	if !ok || checkPart(conn, true) != nil {
		return nil, invalid("INVALID_NAME", "parent", "must be connections/{c} or connections/-")
	}
	resp := &mifsecv1.ListPathsResponse{}
	var err error
	resp.NextPageToken, err = list(h.s, ctx, "paths:"+conn, req.GetPageSize(), req.GetPageToken(),
		func(ctx context.Context, after string, n int) ([]engine.PathView, bool, error) {
			return h.s.e.ListPaths(ctx, conn, after, n)
		},
		func(v engine.PathView) string { return v.Conn + "/" + v.ID },
		func(v engine.PathView) { resp.Paths = append(resp.Paths, pathToProto(v)) })
	return resp, err
}

func (h *saService) MigrateIkeSa(ctx context.Context, req *mifsecv1.MigrateIkeSaRequest) (*mifsecv1.MigrateIkeSaResponse, error) {
	conn, spi, err := parseIKEName(req.GetName(), "name", false)
	if err != nil {
		return nil, err
	}
	var toIface, toPath string
	switch t := req.GetTarget().(type) {
	case *mifsecv1.MigrateIkeSaRequest_Interface:
		if toIface, err = parseName(t.Interface, interfaces, "interface"); err != nil {
			return nil, err
		}
	case *mifsecv1.MigrateIkeSaRequest_Path:
		pc, id, err := parsePathName(t.Path, "path")
		if err != nil {
			return nil, err
		}
		if pc != conn {
			return nil, invalid("PATH_OF_ANOTHER_CONNECTION", "path", "the path must belong to the IKE SA's connection")
		}
		toPath = id
	default:
		return nil, invalid("MISSING_FIELD", "target", "interface or path is required")
	}
	v, err := h.s.e.MigrateIKESA(ctx, conn, spi, toIface, toPath)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.MigrateIkeSaResponse{IkeSa: ikeSAToProto(v)}, nil
}
