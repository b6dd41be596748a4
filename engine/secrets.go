package engine

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"time"

	"github.com/mifsec/mifsec/engine/transform"
)

// SecretType says what a secret holds.
type SecretType uint8

const (
	SecretPSK SecretType = iota + 1
	SecretPrivateKey
)

func (t SecretType) String() string {
	switch t {
	case SecretPSK:
		return "psk"
	case SecretPrivateKey:
		return "private_key"
	}
	return fmt.Sprintf("secret_type(%d)", t)
}

// Minimum PSK length: RFC 7296 §2.15 asks for a key as strong as the PRF key;
// we refuse trivially short ones.
const minPSKLen = 8

// secret is a stored key. Its value never leaves the engine except to the
// IKE machines that use it, and it never prints.
type secret struct {
	ID         string     `json:"id"`
	Type       SecretType `json:"type"`
	Value      []byte     `json:"value"`
	CreateTime time.Time  `json:"create_time"`

	signer crypto.Signer // parsed private key
	desc   string
	// psk is Value as key material, one copy shared by the sa.Config
	// templates of the connections using it, zeroed with the secret.
	psk transform.Secret
}

// pskSecret is the secret's value as a PSK shared by its users.
func (s *secret) pskSecret() transform.Secret {
	if s.psk.Len() == 0 {
		s.psk = transform.NewSecret(s.Value)
	}
	return s.psk
}

func (s *secret) String() string   { return "secret(" + s.ID + ", [redacted])" }
func (s *secret) GoString() string { return s.String() }

// SecretInfo is what the API may show of a secret.
type SecretInfo struct {
	ID          string
	Type        SecretType
	Description string
	UsedBy      []string
	CreateTime  time.Time
}

// parse checks the value and fills signer and desc.
func (s *secret) parse() error {
	switch s.Type {
	case SecretPSK:
		if len(s.Value) < minPSKLen {
			return fmt.Errorf("a PSK must be at least %d bytes", minPSKLen)
		}
		s.desc = fmt.Sprintf("%d-byte pre-shared key", len(s.Value))
		return nil
	case SecretPrivateKey:
		signer, desc, err := parsePrivateKey(s.Value)
		if err != nil {
			return err
		}
		s.signer, s.desc = signer, desc
		return nil
	}
	return fmt.Errorf("type must be psk or private_key")
}

func parsePrivateKey(b []byte) (crypto.Signer, string, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, "", fmt.Errorf("private key is not PEM")
	}
	var key any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		return nil, "", fmt.Errorf("unsupported PEM block %q", blk.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("parse private key: %w", err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, "ECDSA " + k.Curve.Params().Name + " private key", nil
	case ed25519.PrivateKey:
		return k, "Ed25519 private key", nil
	case *rsa.PrivateKey:
		return k, fmt.Sprintf("RSA %d-bit private key", k.N.BitLen()), nil
	}
	return nil, "", fmt.Errorf("unsupported private key type %T", key)
}

func (st *state) secretInfo(s *secret) SecretInfo {
	return SecretInfo{ID: s.ID, Type: s.Type, Description: s.desc, UsedBy: st.secretUsers(s.ID), CreateTime: s.CreateTime}
}

func (st *state) secretUsers(id string) []string {
	var users []string
	for _, c := range st.connections {
		if slices.Contains(c.secretRefs(), id) {
			users = append(users, c.ID)
		}
	}
	slices.Sort(users)
	return users
}

// CreateSecret stores a secret. The value is copied.
func (e *Engine) CreateSecret(ctx context.Context, id string, typ SecretType, value []byte) (SecretInfo, error) {
	if err := ValidID(id); err != nil {
		return SecretInfo{}, &Error{Code: InvalidArgument, Reason: ReasonInvalidID, Field: "secret_id", Msg: err.Error()}
	}
	s := &secret{ID: id, Type: typ, Value: slices.Clone(value)}
	if typ != SecretPSK && typ != SecretPrivateKey {
		return SecretInfo{}, errf(InvalidArgument, "INVALID_SECRET_TYPE", "secret.type", "must be SECRET_TYPE_PSK or SECRET_TYPE_PRIVATE_KEY")
	}
	if err := s.parse(); err != nil {
		clear(s.Value)
		return SecretInfo{}, errf(InvalidArgument, "INVALID_SECRET_VALUE", "secret.value", "%v", err)
	}
	return do(ctx, e, func(st *state) (SecretInfo, error) {
		if _, ok := st.secrets[id]; ok {
			clear(s.Value)
			return SecretInfo{}, errf(AlreadyExists, "SECRET_ALREADY_EXISTS", "secret_id", "secret %q already exists", id)
		}
		s.CreateTime = st.e.cfg.Now()
		st.secrets[id] = s
		st.configChanged()
		if err := st.persistSecrets(); err != nil {
			delete(st.secrets, id)
			return SecretInfo{}, err
		}
		st.e.log.Info("secret stored", "secret", id, "type", typ)
		return st.secretInfo(s), nil
	})
}

// GetSecret returns a secret's metadata.
func (e *Engine) GetSecret(ctx context.Context, id string) (SecretInfo, error) {
	return do(ctx, e, func(st *state) (SecretInfo, error) {
		s, ok := st.secrets[id]
		if !ok {
			return SecretInfo{}, errf(NotFound, "SECRET_NOT_FOUND", "name", "secret %q not found", id)
		}
		return st.secretInfo(s), nil
	})
}

// ListSecrets pages through secrets in id order.
func (e *Engine) ListSecrets(ctx context.Context, after string, limit int) ([]SecretInfo, bool, error) {
	return listPage(ctx, e, after, limit, func(st *state) []SecretInfo {
		var out []SecretInfo
		for _, s := range st.secrets {
			out = append(out, st.secretInfo(s))
		}
		slices.SortFunc(out, func(a, b SecretInfo) int { return cmpString(a.ID, b.ID) })
		return out
	}, func(s SecretInfo) string { return s.ID })
}

// DeleteSecret removes a secret no connection uses, zeroing its value.
func (e *Engine) DeleteSecret(ctx context.Context, id string) error {
	_, err := do(ctx, e, func(st *state) (struct{}, error) {
		s, ok := st.secrets[id]
		if !ok {
			return struct{}{}, errf(NotFound, "SECRET_NOT_FOUND", "name", "secret %q not found", id)
		}
		if users := st.secretUsers(id); len(users) > 0 {
			return struct{}{}, errf(FailedPrecondition, "SECRET_IN_USE", "name", "secret %q is used by connections %v", id, users)
		}
		delete(st.secrets, id)
		st.configChanged()
		if err := st.persistSecrets(); err != nil {
			st.secrets[id] = s
			return struct{}{}, err
		}
		clear(s.Value)
		s.psk.Zero()
		st.e.log.Info("secret deleted", "secret", id)
		return struct{}{}, nil
	})
	return err
}

func (st *state) persistSecrets() error {
	var all []*secret
	for _, s := range st.secrets {
		all = append(all, s)
	}
	slices.SortFunc(all, func(a, b *secret) int { return cmpString(a.ID, b.ID) })
	if err := st.e.secretStore.Save(persistedSecrets{Version: persistVersion, Secrets: all}); err != nil {
		return &Error{Code: Internal, Reason: ReasonPersistFailed, Msg: "could not persist secrets", Err: err}
	}
	return nil
}

type persistedSecrets struct {
	Version int       `json:"version"`
	Secrets []*secret `json:"secrets"`
}

func (st *state) restoreSecrets() error {
	var p persistedSecrets
	found, err := st.e.secretStore.Load(&p)
	if err != nil || !found {
		return err
	}
	for _, s := range p.Secrets {
		if ValidID(s.ID) != nil || s.parse() != nil {
			st.e.log.Warn("skipping invalid persisted secret", "secret", s.ID)
			continue
		}
		st.secrets[s.ID] = s
	}
	return nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// listPage runs all on the state goroutine and returns the page after `after`.
func listPage[T any](ctx context.Context, e *Engine, after string, limit int, all func(*state) []T, key func(T) string) ([]T, bool, error) {
	type page struct {
		items []T
		more  bool
	}
	p, err := do(ctx, e, func(st *state) (page, error) {
		var p page
		for _, it := range all(st) {
			if key(it) <= after {
				continue
			}
			if len(p.items) == limit {
				p.more = true
				break
			}
			p.items = append(p.items, it)
		}
		return p, nil
	})
	return p.items, p.more, err
}
