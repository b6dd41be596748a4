package ike

// VendorID is the Vendor ID payload (RFC 7296 §3.12).
type VendorID struct {
	Data []byte
}

func (*VendorID) Type() PayloadType { return PayloadVendorID }

func (p *VendorID) appendBody(dst []byte) ([]byte, error) { return append(dst, p.Data...), nil }

func (p *VendorID) decodeBody(b []byte) error { p.Data = nilIfEmpty(b); return nil }
