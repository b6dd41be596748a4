package ike

import (
	"fmt"
	"testing"
)

func TestRegistryNames(t *testing.T) {
	tests := []struct {
		v    fmt.Stringer
		want string
	}{
		{IKESAInit, "IKE_SA_INIT"},
		{Informational, "INFORMATIONAL"},
		{ExchangeType(99), "EXCHANGE(99)"},
		{PayloadSKF, "SKF"},
		{PayloadNotify, "N"},
		{PayloadType(200), "PAYLOAD(200)"},
		{ProtoESP, "ESP"},
		{ProtocolID(0), "PROTOCOL(0)"},
		{TransformDH, "D-H"},
		{TransformType(9), "ADDKE4"},
		{EncrAESGCM16, "ENCR_AES_GCM_16"},
		{EncrChaCha20Poly1305, "ENCR_CHACHA20_POLY1305"},
		{EncrID(1000), "ENCR(1000)"},
		{PRFHMACSHA256, "PRF_HMAC_SHA2_256"},
		{IntegHMACSHA512_256, "AUTH_HMAC_SHA2_512_256"},
		{IntegNone, "NONE"},
		{GroupCurve25519, "Curve25519"},
		{GroupMODP2048, "2048-bit MODP Group"},
		{GroupECP256, "256-bit random ECP group"},
		{GroupID(4), "GROUP(4)"},
		{ESNEnabled, "Extended Sequence Numbers"},
		{IDFQDN, "ID_FQDN"},
		{IDNull, "ID_NULL"},
		{AuthSharedKeyMIC, "Shared Key Message Integrity Code"},
		{AuthDigitalSignature, "Digital Signature"},
		{HashSHA256, "SHA2-256"},
		{HashAlgorithm(0), "HASH(0)"},
		{CertX509Signature, "X.509 Certificate - Signature"},
		{TSIPv6AddrRange, "TS_IPV6_ADDR_RANGE"},
		{CFGReply, "CFG_REPLY"},
		{CPPCSCFIP6Address, "P_CSCF_IP6_ADDRESS"},
		{CPAttributeType(1000), "CP_ATTRIBUTE(1000)"},
		{UnsupportedCriticalPayload, "UNSUPPORTED_CRITICAL_PAYLOAD"},
		{InvalidKEPayload, "INVALID_KE_PAYLOAD"},
		{Cookie, "COOKIE"},
		{RekeySA, "REKEY_SA"},
		{ESPTFCPaddingNotSupported, "ESP_TFC_PADDING_NOT_SUPPORTED"},
		{NonFirstFragmentsAlso, "NON_FIRST_FRAGMENTS_ALSO"},
		{MOBIKESupported, "MOBIKE_SUPPORTED"},
		{MultipleAuthSupported, "MULTIPLE_AUTH_SUPPORTED"},
		{IKEv2FragmentationSupported, "IKEV2_FRAGMENTATION_SUPPORTED"},
		{SignatureHashAlgorithms, "SIGNATURE_HASH_ALGORITHMS"},
		{CloneIKESASupported, "CLONE_IKE_SA_SUPPORTED"},
		{CloneIKESA, "CLONE_IKE_SA"},
		{SAResourceInfo, "SA_RESOURCE_INFO"},
		{NotifyType(12345), "NOTIFY(12345)"},
		{FlagInitiator | FlagResponse, "I|R"},
		{Flags(0), "0"},
		{Transform{Type: TransformENCR, ID: uint16(EncrAESGCM16), KeyLength: 256}, "ENCR_AES_GCM_16/256"},
		{Transform{Type: TransformType(40), ID: 7}, "TRANSFORM(40):7"},
	}
	for _, tt := range tests {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("%T(%v).String() = %q, want %q", tt.v, tt.v, got, tt.want)
		}
	}
}

// Every MOBIKE status value RFC 4555 §4 defines has a name (16396..16404).
func TestNotifyMOBIKERange(t *testing.T) {
	for n := MOBIKESupported; n <= MultipleAuthSupported; n++ {
		if _, ok := notifyNames[n]; !ok {
			t.Errorf("notify %d has no name", uint16(n))
		}
	}
	if InvalidSyntax.IsError() != true || InitialContact.IsError() {
		t.Error("IsError: errors are below 16384")
	}
}

func TestEncrIsAEAD(t *testing.T) {
	for _, tt := range []struct {
		e    EncrID
		want bool
	}{{EncrAESGCM16, true}, {EncrChaCha20Poly1305, true}, {EncrAESCCM8, true}, {EncrAESCBC, false}, {EncrAESCTR, false}, {Encr3DES, false}} {
		if got := tt.e.IsAEAD(); got != tt.want {
			t.Errorf("%v.IsAEAD() = %v", tt.e, got)
		}
	}
}
