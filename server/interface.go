package server

import (
	"context"
	"strings"

	"github.com/mifsec/mifsec/engine"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

type interfaceService struct {
	mifsecv1.UnimplementedInterfaceServiceServer
	s *Server
}

func (h *interfaceService) CreateInterface(ctx context.Context, req *mifsecv1.CreateInterfaceRequest) (*mifsecv1.CreateInterfaceResponse, error) {
	if req.GetInterface() == nil {
		return nil, invalid("MISSING_FIELD", "interface", "required")
	}
	spec, err := interfaceSpecFromProto(req.GetInterface(), true)
	if err != nil {
		return nil, err
	}
	ifc, err := h.s.e.CreateInterface(ctx, req.GetInterfaceId(), spec, req.GetAllowMissing())
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.CreateInterfaceResponse{Interface: interfaceToProto(&ifc)}, nil
}

func (h *interfaceService) GetInterface(ctx context.Context, req *mifsecv1.GetInterfaceRequest) (*mifsecv1.GetInterfaceResponse, error) {
	id, err := parseName(req.GetName(), interfaces, "name")
	if err != nil {
		return nil, err
	}
	ifc, err := h.s.e.GetInterface(ctx, id)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.GetInterfaceResponse{Interface: interfaceToProto(&ifc)}, nil
}

func (h *interfaceService) ListInterfaces(ctx context.Context, req *mifsecv1.ListInterfacesRequest) (*mifsecv1.ListInterfacesResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	after, err := h.s.pages.parse(interfaces, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	items, more, err := h.s.e.ListInterfaces(ctx, after, size)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	resp := &mifsecv1.ListInterfacesResponse{}
	for i := range items {
		resp.Interfaces = append(resp.Interfaces, interfaceToProto(&items[i]))
	}
	if more && len(items) > 0 {
		resp.NextPageToken = h.s.pages.issue(interfaces, items[len(items)-1].ID)
	}
	return resp, nil
}

func (h *interfaceService) UpdateInterface(ctx context.Context, req *mifsecv1.UpdateInterfaceRequest) (*mifsecv1.UpdateInterfaceResponse, error) {
	if req.GetInterface() == nil {
		return nil, invalid("MISSING_FIELD", "interface", "required")
	}
	id, err := parseName(req.GetInterface().GetName(), interfaces, "interface.name")
	if err != nil {
		return nil, err
	}
	var fields []string
	for _, p := range req.GetUpdateMask().GetPaths() {
		if p == "*" {
			if len(req.GetUpdateMask().GetPaths()) != 1 {
				return nil, invalid(engine.ReasonInvalidFieldMask, "update_mask", "'*' must be the only path")
			}
			fields = nil
			break
		}
		if !isInterfaceField(p) {
			return nil, invalid(engine.ReasonInvalidFieldMask, "update_mask", "unknown or immutable field "+quote(p)+" (allowed: "+strings.Join(engine.InterfaceFields, ", ")+")")
		}
		fields = append(fields, p)
	}
	checkAccess := len(fields) == 0
	for _, f := range fields {
		checkAccess = checkAccess || f == engine.FieldAccessType
	}
	spec, err := interfaceSpecFromProto(req.GetInterface(), checkAccess)
	if err != nil {
		return nil, err
	}
	ifc, err := h.s.e.UpdateInterface(ctx, id, spec, fields)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.UpdateInterfaceResponse{Interface: interfaceToProto(&ifc)}, nil
}

func (h *interfaceService) DeleteInterface(ctx context.Context, req *mifsecv1.DeleteInterfaceRequest) (*mifsecv1.DeleteInterfaceResponse, error) {
	id, err := parseName(req.GetName(), interfaces, "name")
	if err != nil {
		return nil, err
	}
	if err := h.s.e.DeleteInterface(ctx, id); err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.DeleteInterfaceResponse{}, nil
}

func isInterfaceField(p string) bool {
	for _, f := range engine.InterfaceFields {
		if f == p {
			return true
		}
	}
	return false
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return "\"" + s + "\""
}
