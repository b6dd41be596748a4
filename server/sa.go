package server

import (
	"context"
	"fmt"
	"strings"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/sa"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

type saService struct {
	mifsecv1.UnimplementedSecurityAssociationServiceServer
	s *Server
}

var ikeStateToProto = map[sa.State]mifsecv1.IkeSaState{
	sa.StateConnecting:     mifsecv1.IkeSaState_IKE_SA_STATE_CONNECTING,
	sa.StateAuthenticating: mifsecv1.IkeSaState_IKE_SA_STATE_CONNECTING,
	sa.StateEstablished:    mifsecv1.IkeSaState_IKE_SA_STATE_ESTABLISHED,
	sa.StateDeleting:       mifsecv1.IkeSaState_IKE_SA_STATE_DELETING,
	sa.StateClosed:         mifsecv1.IkeSaState_IKE_SA_STATE_DOWN,
}

// childStateToProto maps engine/sa's Child SA state names.
var childStateToProto = map[string]mifsecv1.ChildSaState{
	"creating":  mifsecv1.ChildSaState_CHILD_SA_STATE_CREATING,
	"installed": mifsecv1.ChildSaState_CHILD_SA_STATE_INSTALLED,
	"rekeying":  mifsecv1.ChildSaState_CHILD_SA_STATE_REKEYING,
	"rekeyed":   mifsecv1.ChildSaState_CHILD_SA_STATE_REKEYED,
	"deleting":  mifsecv1.ChildSaState_CHILD_SA_STATE_DELETING,
}

var downToProto = map[sa.Reason]mifsecv1.DownReason{
	sa.ReasonLocalDelete:      mifsecv1.DownReason_DOWN_REASON_LOCAL_DELETE,
	sa.ReasonPeerDelete:       mifsecv1.DownReason_DOWN_REASON_PEER_DELETE,
	sa.ReasonDPDTimeout:       mifsecv1.DownReason_DOWN_REASON_DPD_TIMEOUT,
	sa.ReasonTimeout:          mifsecv1.DownReason_DOWN_REASON_RETRANSMIT_TIMEOUT,
	sa.ReasonAuthFailed:       mifsecv1.DownReason_DOWN_REASON_AUTH_FAILED,
	sa.ReasonNoProposalChosen: mifsecv1.DownReason_DOWN_REASON_NO_PROPOSAL,
	sa.ReasonInvalidKE:        mifsecv1.DownReason_DOWN_REASON_NO_PROPOSAL,
	sa.ReasonRekeyed:          mifsecv1.DownReason_DOWN_REASON_REKEYED,
	sa.ReasonReauthenticated:  mifsecv1.DownReason_DOWN_REASON_REKEYED,
	sa.ReasonRedundant:        mifsecv1.DownReason_DOWN_REASON_REKEYED,
	sa.ReasonExpired:          mifsecv1.DownReason_DOWN_REASON_EXPIRED,
	sa.ReasonPeerError:        mifsecv1.DownReason_DOWN_REASON_PEER_ERROR,
}

func ikeSAToProto(v engine.IKESAView) *mifsecv1.IkeSa {
	p := &mifsecv1.IkeSa{
		Name: connections + "/" + v.Conn + "/ikeSas/" + v.Name, State: ikeStateToProto[v.State],
		InitiatorSpi: fmt.Sprintf("%016x", v.SPIi), ResponderSpi: fmt.Sprintf("%016x", v.SPIr),
		LocalId: v.LocalID, RemoteId: v.RemoteID, Proposal: v.Proposal,
		LocalNat: v.NATLocal, RemoteNat: v.NATRemote,
		PeerMobike: v.Caps.MOBIKE, PeerFragmentation: v.Caps.Fragmentation, PeerClone: v.Caps.Clone,
		VirtualIps: addrStrings(v.VirtualIPs), EstablishTime: ts(v.Established), RekeyTime: ts(v.RekeyAt),
		DownDetail: v.DownDetail, ChildSaCount: uint32(v.Children), MessagesIn: v.MsgsIn, MessagesOut: v.MsgsOut,
	}
	if v.Local.IsValid() {
		p.LocalAddress = v.Local.String()
	}
	if v.Remote.IsValid() {
		p.RemoteAddress = v.Remote.String()
	}
	switch v.Role {
	case sa.Initiator:
		p.Role = mifsecv1.Role_ROLE_INITIATOR
	case sa.Responder:
		p.Role = mifsecv1.Role_ROLE_RESPONDER
	}
	if v.DownReason != sa.ReasonNone {
		if r, ok := downToProto[v.DownReason]; ok {
			p.DownReason = r
		} else {
			p.DownReason = mifsecv1.DownReason_DOWN_REASON_OTHER
		}
	}
	return p
}

func childSAToProto(v engine.ChildSAView) *mifsecv1.ChildSa {
	p := &mifsecv1.ChildSa{
		Name:  connections + "/" + v.Conn + "/ikeSas/" + v.IKE + "/childSas/" + v.Name,
		Child: v.Child, State: childStateToProto[v.State], Mode: modeToProto[v.Mode],
		SpiIn: fmt.Sprintf("%08x", v.SPIIn), SpiOut: fmt.Sprintf("%08x", v.SPIOut),
		LocalTs: v.LocalTS, RemoteTs: v.RemoteTS, Proposal: v.Proposal,
		BytesIn: v.In.Bytes, BytesOut: v.Out.Bytes, PacketsIn: v.In.Packets, PacketsOut: v.Out.Packets,
		InstallTime: ts(v.Installed), RekeyTime: ts(v.RekeyAt),
	}
	for _, n := range v.In.Drops {
		p.DropsIn += n
	}
	if v.Local.IsValid() {
		p.LocalAddress = v.Local.String()
	}
	if v.Remote.IsValid() {
		p.RemoteAddress = v.Remote.String()
	}
	return p
}

// parseIKEName splits connections/{c}/ikeSas/{spi}; "-" is allowed where any is.
func parseIKEName(name, field string, allowAny bool) (conn, spi string, err error) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != connections || parts[2] != "ikeSas" {
		return "", "", invalid("INVALID_NAME", field, "must be of the form connections/{c}/ikeSas/{spi}")
	}
	conn, spi = parts[1], parts[3]
	if err := checkPart(conn, allowAny); err != nil {
		return "", "", invalid("INVALID_NAME", field, err.Error())
	}
	if !(allowAny && spi == "-") && !isHex(spi, 16) {
		return "", "", invalid("INVALID_NAME", field, "the IKE SA id is 16 hex digits")
	}
	return conn, spi, nil
}

func parseChildName(name, field string) (conn, ike, child string, err error) {
	i := strings.LastIndex(name, "/childSas/")
	if i < 0 {
		return "", "", "", invalid("INVALID_NAME", field, "must be of the form connections/{c}/ikeSas/{spi}/childSas/{spi}")
	}
	conn, ike, err = parseIKEName(name[:i], field, false)
	if err != nil {
		return "", "", "", err
	}
	child = name[i+len("/childSas/"):]
	if !isHex(child, 8) {
		return "", "", "", invalid("INVALID_NAME", field, "the Child SA id is 8 hex digits")
	}
	return conn, ike, child, nil
}

func checkPart(id string, allowAny bool) error {
	if allowAny && id == "-" {
		return nil
	}
	return engine.ValidID(id)
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

func (h *saService) ListIkeSas(ctx context.Context, req *mifsecv1.ListIkeSasRequest) (*mifsecv1.ListIkeSasResponse, error) {
	conn, ok := strings.CutPrefix(req.GetParent(), connections+"/")
	if !ok || checkPart(conn, true) != nil {
		return nil, invalid("INVALID_NAME", "parent", "must be connections/{c} or connections/-")
	}
	resp := &mifsecv1.ListIkeSasResponse{}
	var err error
	resp.NextPageToken, err = list(h.s, ctx, "ikeSas:"+conn, req.GetPageSize(), req.GetPageToken(),
		func(ctx context.Context, after string, n int) ([]engine.IKESAView, bool, error) {
			return h.s.e.ListIKESAs(ctx, conn, after, n)
		},
		func(v engine.IKESAView) string { return v.Conn + "/" + v.Name },
		func(v engine.IKESAView) { resp.IkeSas = append(resp.IkeSas, ikeSAToProto(v)) })
	return resp, err
}

func (h *saService) GetIkeSa(ctx context.Context, req *mifsecv1.GetIkeSaRequest) (*mifsecv1.GetIkeSaResponse, error) {
	conn, spi, err := parseIKEName(req.GetName(), "name", false)
	if err != nil {
		return nil, err
	}
	v, err := h.s.e.GetIKESA(ctx, conn, spi)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.GetIkeSaResponse{IkeSa: ikeSAToProto(v)}, nil
}

func (h *saService) RekeyIkeSa(ctx context.Context, req *mifsecv1.RekeyIkeSaRequest) (*mifsecv1.RekeyIkeSaResponse, error) {
	conn, spi, err := parseIKEName(req.GetName(), "name", false)
	if err != nil {
		return nil, err
	}
	v, err := h.s.e.RekeyIKESA(ctx, conn, spi)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.RekeyIkeSaResponse{IkeSa: ikeSAToProto(v)}, nil
}

func (h *saService) TerminateIkeSa(ctx context.Context, req *mifsecv1.TerminateIkeSaRequest) (*mifsecv1.TerminateIkeSaResponse, error) {
	conn, spi, err := parseIKEName(req.GetName(), "name", false)
	if err != nil {
		return nil, err
	}
	if err := h.s.e.TerminateIKESA(ctx, conn, spi); err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.TerminateIkeSaResponse{}, nil
}

func (h *saService) ListChildSas(ctx context.Context, req *mifsecv1.ListChildSasRequest) (*mifsecv1.ListChildSasResponse, error) {
	conn, spi, err := parseIKEName(req.GetParent(), "parent", true)
	if err != nil {
		return nil, err
	}
	resp := &mifsecv1.ListChildSasResponse{}
	resp.NextPageToken, err = list(h.s, ctx, "childSas:"+conn+"/"+spi, req.GetPageSize(), req.GetPageToken(),
		func(ctx context.Context, after string, n int) ([]engine.ChildSAView, bool, error) {
			return h.s.e.ListChildSAs(ctx, conn, spi, after, n)
		},
		func(v engine.ChildSAView) string { return v.Conn + "/" + v.IKE + "/" + v.Name },
		func(v engine.ChildSAView) { resp.ChildSas = append(resp.ChildSas, childSAToProto(v)) })
	return resp, err
}

func (h *saService) GetChildSa(ctx context.Context, req *mifsecv1.GetChildSaRequest) (*mifsecv1.GetChildSaResponse, error) {
	conn, ike, child, err := parseChildName(req.GetName(), "name")
	if err != nil {
		return nil, err
	}
	v, err := h.s.e.GetChildSA(ctx, conn, ike, child)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.GetChildSaResponse{ChildSa: childSAToProto(v)}, nil
}

func (h *saService) RekeyChildSa(ctx context.Context, req *mifsecv1.RekeyChildSaRequest) (*mifsecv1.RekeyChildSaResponse, error) {
	conn, ike, child, err := parseChildName(req.GetName(), "name")
	if err != nil {
		return nil, err
	}
	v, err := h.s.e.RekeyChildSA(ctx, conn, ike, child)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.RekeyChildSaResponse{ChildSa: childSAToProto(v)}, nil
}

func (h *saService) TerminateChildSa(ctx context.Context, req *mifsecv1.TerminateChildSaRequest) (*mifsecv1.TerminateChildSaResponse, error) {
	conn, ike, child, err := parseChildName(req.GetName(), "name")
	if err != nil {
		return nil, err
	}
	if err := h.s.e.TerminateChildSA(ctx, conn, ike, child); err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.TerminateChildSaResponse{}, nil
}

func (h *connectionService) InitiateConnection(ctx context.Context, req *mifsecv1.InitiateConnectionRequest) (*mifsecv1.InitiateConnectionResponse, error) {
	id, err := parseName(req.GetName(), connections, "name")
	if err != nil {
		return nil, err
	}
	name, err := h.s.e.InitiateConnection(ctx, id, req.GetChild())
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.InitiateConnectionResponse{IkeSa: connections + "/" + id + "/ikeSas/" + name}, nil
}

func (h *connectionService) TerminateConnection(ctx context.Context, req *mifsecv1.TerminateConnectionRequest) (*mifsecv1.TerminateConnectionResponse, error) {
	id, err := parseName(req.GetName(), connections, "name")
	if err != nil {
		return nil, err
	}
	if err := h.s.e.TerminateConnection(ctx, id); err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.TerminateConnectionResponse{}, nil
}
