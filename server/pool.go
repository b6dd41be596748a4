package server

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/mifsec/mifsec/engine"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

const pools = "pools"

type poolService struct {
	mifsecv1.UnimplementedPoolServiceServer
	s *Server
}

func poolToProto(in engine.PoolInfo) *mifsecv1.Pool {
	p := &mifsecv1.Pool{Name: pools + "/" + in.ID, Ranges: in.Ranges, DnsServers: addrStrings(in.DNS),
		PcscfServers: addrStrings(in.PCSCF), Size: in.Size, InUse: in.InUse, CreateTime: ts(in.CreateTime)}
	for _, l := range in.Leases {
		p.Leases = append(p.Leases, &mifsecv1.Lease{Address: l.Addr.String(), Identity: l.Identity, Online: l.Online, LeaseTime: ts(l.LeaseTime)})
	}
	return p
}

func poolSpecFromProto(p *mifsecv1.Pool) (engine.PoolSpec, error) {
	spec := engine.PoolSpec{Ranges: p.GetRanges()}
	var err error
	if spec.DNS, err = parseAddrs(p.GetDnsServers(), "pool.dns_servers"); err != nil {
		return spec, err
	}
	if spec.PCSCF, err = parseAddrs(p.GetPcscfServers(), "pool.pcscf_servers"); err != nil {
		return spec, err
	}
	return spec, nil
}

func parseAddrs(in []string, field string) ([]netip.Addr, error) {
	var out []netip.Addr
	for i, s := range in {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, invalid("INVALID_ADDRESS", fmt.Sprintf("%s[%d]", field, i), "not an IP address")
		}
		out = append(out, a)
	}
	return out, nil
}

func addrStrings(in []netip.Addr) []string {
	out := make([]string, len(in))
	for i, a := range in {
		out[i] = a.String()
	}
	return out
}

func (h *poolService) CreatePool(ctx context.Context, req *mifsecv1.CreatePoolRequest) (*mifsecv1.CreatePoolResponse, error) {
	if req.GetPool() == nil {
		return nil, invalid("MISSING_FIELD", "pool", "required")
	}
	spec, err := poolSpecFromProto(req.GetPool())
	if err != nil {
		return nil, err
	}
	in, err := h.s.e.CreatePool(ctx, req.GetPoolId(), spec)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.CreatePoolResponse{Pool: poolToProto(in)}, nil
}

func (h *poolService) GetPool(ctx context.Context, req *mifsecv1.GetPoolRequest) (*mifsecv1.GetPoolResponse, error) {
	id, err := parseName(req.GetName(), pools, "name")
	if err != nil {
		return nil, err
	}
	in, err := h.s.e.GetPool(ctx, id)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.GetPoolResponse{Pool: poolToProto(in)}, nil
}

func (h *poolService) ListPools(ctx context.Context, req *mifsecv1.ListPoolsRequest) (*mifsecv1.ListPoolsResponse, error) {
	resp := &mifsecv1.ListPoolsResponse{}
	var err error
	resp.NextPageToken, err = list(h.s, ctx, pools, req.GetPageSize(), req.GetPageToken(), h.s.e.ListPools,
		func(in engine.PoolInfo) string { return in.ID },
		func(in engine.PoolInfo) { resp.Pools = append(resp.Pools, poolToProto(in)) })
	return resp, err
}

func (h *poolService) UpdatePool(ctx context.Context, req *mifsecv1.UpdatePoolRequest) (*mifsecv1.UpdatePoolResponse, error) {
	if req.GetPool() == nil {
		return nil, invalid("MISSING_FIELD", "pool", "required")
	}
	id, err := parseName(req.GetPool().GetName(), pools, "pool.name")
	if err != nil {
		return nil, err
	}
	fields, err := maskFields(req.GetUpdateMask().GetPaths(), engine.PoolFields)
	if err != nil {
		return nil, err
	}
	spec, err := poolSpecFromProto(req.GetPool())
	if err != nil {
		return nil, err
	}
	in, err := h.s.e.UpdatePool(ctx, id, spec, fields)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.UpdatePoolResponse{Pool: poolToProto(in)}, nil
}

func (h *poolService) DeletePool(ctx context.Context, req *mifsecv1.DeletePoolRequest) (*mifsecv1.DeletePoolResponse, error) {
	id, err := parseName(req.GetName(), pools, "name")
	if err != nil {
		return nil, err
	}
	if err := h.s.e.DeletePool(ctx, id); err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.DeletePoolResponse{}, nil
}
