package engine

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/mifsec/mifsec/engine/sa"
)

// validIdentity checks strongSwan identity syntax; %any only where allowed.
func validIdentity(s string, allowAny bool) error {
	id, err := sa.ParseIdentity(s)
	if err != nil {
		return err
	}
	if id.IsAny() && !allowAny {
		return fmt.Errorf("%%any is only allowed for the remote identity")
	}
	return nil
}

// parseCertChain reads PEM certificates, leaf first.
func parseCertChain(p string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(p)
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no PEM certificate found")
	}
	return out, nil
}
