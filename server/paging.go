package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/mifsec/mifsec/engine"
)

// pageTokens issues opaque List page tokens. A token names the last item of
// the previous page and is authenticated with a per-process key, so a token
// that was never issued (or was issued by an earlier daemon) is refused.
type pageTokens struct {
	key [32]byte
}

const (
	defaultPageSize = 50
	maxPageSize     = 1000
	reasonPageToken = "INVALID_PAGE_TOKEN"
	reasonPageSize  = "INVALID_PAGE_SIZE"
)

func (p *pageTokens) mac(kind, after string) []byte {
	m := hmac.New(sha256.New, p.key[:])
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(after))
	return m.Sum(nil)[:16]
}

// issue returns a token that resumes a listing of kind after `after`.
func (p *pageTokens) issue(kind, after string) string {
	raw := append(p.mac(kind, after), after...)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// parse returns where a listing resumes; "" for the first page.
func (p *pageTokens) parse(kind, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < 16 {
		return "", invalid(reasonPageToken, "page_token", "not a page token issued by this server")
	}
	after := string(raw[16:])
	if !hmac.Equal(raw[:16], p.mac(kind, after)) {
		return "", invalid(reasonPageToken, "page_token", "not a page token issued by this server")
	}
	return after, nil
}

// pageSize validates and defaults a requested page size.
func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, invalid(reasonPageSize, "page_size", "must not be negative")
	case n == 0:
		return defaultPageSize, nil
	case n > maxPageSize:
		return maxPageSize, nil
	}
	return int(n), nil
}

// parseName splits "collection/id" and checks the collection.
func parseName(name, collection, field string) (string, error) {
	id, ok := strings.CutPrefix(name, collection+"/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", invalid("INVALID_NAME", field, "must be of the form "+collection+"/{id}")
	}
	if err := engine.ValidID(id); err != nil {
		return "", invalid("INVALID_NAME", field, err.Error())
	}
	return id, nil
}
