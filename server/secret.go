package server

import (
	"context"

	"github.com/mifsec/mifsec/engine"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

const secrets = "secrets"

type secretService struct {
	mifsecv1.UnimplementedSecretServiceServer
	s *Server
}

var secretTypeFromProto = map[mifsecv1.SecretType]engine.SecretType{
	mifsecv1.SecretType_SECRET_TYPE_PSK:         engine.SecretPSK,
	mifsecv1.SecretType_SECRET_TYPE_PRIVATE_KEY: engine.SecretPrivateKey,
}

func secretToProto(in engine.SecretInfo) *mifsecv1.Secret {
	p := &mifsecv1.Secret{Name: secrets + "/" + in.ID, Description: in.Description, CreateTime: ts(in.CreateTime)}
	for k, v := range secretTypeFromProto {
		if v == in.Type {
			p.Type = k
		}
	}
	for _, c := range in.UsedBy {
		p.UsedBy = append(p.UsedBy, connections+"/"+c)
	}
	return p
}

func (h *secretService) CreateSecret(ctx context.Context, req *mifsecv1.CreateSecretRequest) (*mifsecv1.CreateSecretResponse, error) {
	sec := req.GetSecret()
	if sec == nil {
		return nil, invalid("MISSING_FIELD", "secret", "required")
	}
	typ, ok := secretTypeFromProto[sec.GetType()]
	if !ok {
		return nil, invalid("INVALID_SECRET_TYPE", "secret.type", "must be SECRET_TYPE_PSK or SECRET_TYPE_PRIVATE_KEY")
	}
	var value []byte
	switch d := sec.GetData().(type) {
	case *mifsecv1.Secret_Text:
		value = []byte(d.Text)
	case *mifsecv1.Secret_Value:
		value = d.Value
	default:
		return nil, invalid("MISSING_FIELD", "secret.text", "text or value is required")
	}
	in, err := h.s.e.CreateSecret(ctx, req.GetSecretId(), typ, value)
	clear(value)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.CreateSecretResponse{Secret: secretToProto(in)}, nil
}

func (h *secretService) GetSecret(ctx context.Context, req *mifsecv1.GetSecretRequest) (*mifsecv1.GetSecretResponse, error) {
	id, err := parseName(req.GetName(), secrets, "name")
	if err != nil {
		return nil, err
	}
	in, err := h.s.e.GetSecret(ctx, id)
	if err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.GetSecretResponse{Secret: secretToProto(in)}, nil
}

func (h *secretService) ListSecrets(ctx context.Context, req *mifsecv1.ListSecretsRequest) (*mifsecv1.ListSecretsResponse, error) {
	resp := &mifsecv1.ListSecretsResponse{}
	var err error
	resp.NextPageToken, err = list(h.s, ctx, secrets, req.GetPageSize(), req.GetPageToken(), h.s.e.ListSecrets,
		func(in engine.SecretInfo) string { return in.ID },
		func(in engine.SecretInfo) { resp.Secrets = append(resp.Secrets, secretToProto(in)) })
	return resp, err
}

func (h *secretService) DeleteSecret(ctx context.Context, req *mifsecv1.DeleteSecretRequest) (*mifsecv1.DeleteSecretResponse, error) {
	id, err := parseName(req.GetName(), secrets, "name")
	if err != nil {
		return nil, err
	}
	if err := h.s.e.DeleteSecret(ctx, id); err != nil {
		return nil, h.s.toStatus(err)
	}
	return &mifsecv1.DeleteSecretResponse{}, nil
}

// list runs one paged engine listing and returns the next page token.
func list[T any](s *Server, ctx context.Context, kind string, size int32, token string,
	fetch func(context.Context, string, int) ([]T, bool, error), key func(T) string, add func(T)) (string, error) {
	n, err := pageSize(size)
	if err != nil {
		return "", err
	}
	after, err := s.pages.parse(kind, token)
	if err != nil {
		return "", err
	}
	items, more, err := fetch(ctx, after, n)
	if err != nil {
		return "", s.toStatus(err)
	}
	for _, it := range items {
		add(it)
	}
	if more && len(items) > 0 {
		return s.pages.issue(kind, key(items[len(items)-1])), nil
	}
	return "", nil
}
