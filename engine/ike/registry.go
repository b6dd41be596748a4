package ike

import "strconv"

// Registry values from IANA "Internet Key Exchange Version 2 (IKEv2) Parameters".
// Every type's String gives the IANA name; values the registry does not name here
// print as KIND(n), e.g. NOTIFY(12345).

// regName returns the IANA name of v, or kind(v) when it is not known.
func regName[T ~uint8 | ~uint16](names map[T]string, v T, kind string) string {
	if s, ok := names[v]; ok {
		return s
	}
	return kind + "(" + strconv.FormatUint(uint64(v), 10) + ")"
}

// ExchangeType is the IKE header Exchange Type (RFC 7296 §3.1).
type ExchangeType uint8

const (
	IKESAInit        ExchangeType = 34
	IKEAuth          ExchangeType = 35
	CreateChildSA    ExchangeType = 36
	Informational    ExchangeType = 37
	IKESessionResume ExchangeType = 38 // RFC 5723
	IKEIntermediate  ExchangeType = 43 // RFC 9242
	IKEFollowupKE    ExchangeType = 44 // RFC 9370
)

var exchangeNames = map[ExchangeType]string{
	IKESAInit: "IKE_SA_INIT", IKEAuth: "IKE_AUTH", CreateChildSA: "CREATE_CHILD_SA",
	Informational: "INFORMATIONAL", IKESessionResume: "IKE_SESSION_RESUME",
	IKEIntermediate: "IKE_INTERMEDIATE", IKEFollowupKE: "IKE_FOLLOWUP_KE",
}

func (e ExchangeType) String() string { return regName(exchangeNames, e, "EXCHANGE") }

// PayloadType is a Next Payload value (RFC 7296 §3.2). String gives the IANA notation.
type PayloadType uint8

const (
	PayloadNone     PayloadType = 0
	PayloadSA       PayloadType = 33
	PayloadKE       PayloadType = 34
	PayloadIDi      PayloadType = 35
	PayloadIDr      PayloadType = 36
	PayloadCERT     PayloadType = 37
	PayloadCERTREQ  PayloadType = 38
	PayloadAUTH     PayloadType = 39
	PayloadNonce    PayloadType = 40
	PayloadNotify   PayloadType = 41
	PayloadDelete   PayloadType = 42
	PayloadVendorID PayloadType = 43
	PayloadTSi      PayloadType = 44
	PayloadTSr      PayloadType = 45
	PayloadSK       PayloadType = 46
	PayloadCP       PayloadType = 47
	PayloadEAP      PayloadType = 48
	PayloadGSPM     PayloadType = 49 // RFC 6467
	PayloadSKF      PayloadType = 53 // RFC 7383
	PayloadPS       PayloadType = 54 // RFC 8019
)

var payloadNames = map[PayloadType]string{
	PayloadNone: "NONE", PayloadSA: "SA", PayloadKE: "KE", PayloadIDi: "IDi", PayloadIDr: "IDr",
	PayloadCERT: "CERT", PayloadCERTREQ: "CERTREQ", PayloadAUTH: "AUTH", PayloadNonce: "Nonce",
	PayloadNotify: "N", PayloadDelete: "D", PayloadVendorID: "V", PayloadTSi: "TSi", PayloadTSr: "TSr",
	PayloadSK: "SK", PayloadCP: "CP", PayloadEAP: "EAP", PayloadGSPM: "GSPM", PayloadSKF: "SKF",
	PayloadPS: "PS",
}

func (p PayloadType) String() string { return regName(payloadNames, p, "PAYLOAD") }

// ProtocolID is a Security Protocol Identifier (RFC 7296 §3.3.1).
type ProtocolID uint8

const (
	ProtoIKE ProtocolID = 1
	ProtoAH  ProtocolID = 2
	ProtoESP ProtocolID = 3
)

var protocolNames = map[ProtocolID]string{ProtoIKE: "IKE", ProtoAH: "AH", ProtoESP: "ESP"}

func (p ProtocolID) String() string { return regName(protocolNames, p, "PROTOCOL") }

// TransformType is a Transform Type (RFC 7296 §3.3.2, RFC 9370 §2.2.1).
type TransformType uint8

const (
	TransformENCR   TransformType = 1
	TransformPRF    TransformType = 2
	TransformINTEG  TransformType = 3
	TransformDH     TransformType = 4
	TransformESN    TransformType = 5
	TransformADDKE1 TransformType = 6 // RFC 9370; ADDKE2..7 are 7..12
	TransformADDKE7 TransformType = 12
)

var transformTypeNames = map[TransformType]string{
	TransformENCR: "ENCR", TransformPRF: "PRF", TransformINTEG: "INTEG", TransformDH: "D-H",
	TransformESN: "ESN", 6: "ADDKE1", 7: "ADDKE2", 8: "ADDKE3", 9: "ADDKE4", 10: "ADDKE5",
	11: "ADDKE6", 12: "ADDKE7",
}

func (t TransformType) String() string { return regName(transformTypeNames, t, "TRANSFORM") }

// EncrID is a Transform Type 1 (encryption algorithm) ID (RFC 7296 §3.3.2).
type EncrID uint16

const (
	EncrDESIV64               EncrID = 1
	EncrDES                   EncrID = 2
	Encr3DES                  EncrID = 3
	EncrRC5                   EncrID = 4
	EncrIDEA                  EncrID = 5
	EncrCAST                  EncrID = 6
	EncrBlowfish              EncrID = 7
	Encr3IDEA                 EncrID = 8
	EncrDESIV32               EncrID = 9
	EncrNull                  EncrID = 11
	EncrAESCBC                EncrID = 12
	EncrAESCTR                EncrID = 13 // RFC 5930
	EncrAESCCM8               EncrID = 14 // RFC 5282
	EncrAESCCM12              EncrID = 15
	EncrAESCCM16              EncrID = 16
	EncrAESGCM8               EncrID = 18 // RFC 5282
	EncrAESGCM12              EncrID = 19
	EncrAESGCM16              EncrID = 20
	EncrNullAuthAESGMAC       EncrID = 21 // RFC 4543
	EncrCamelliaCBC           EncrID = 23 // RFC 5529
	EncrCamelliaCTR           EncrID = 24
	EncrCamelliaCCM8          EncrID = 25
	EncrCamelliaCCM12         EncrID = 26
	EncrCamelliaCCM16         EncrID = 27
	EncrChaCha20Poly1305      EncrID = 28 // RFC 7634
	EncrAESCCM8IIV            EncrID = 29 // RFC 8750
	EncrAESGCM16IIV           EncrID = 30
	EncrChaCha20Poly1305IIV   EncrID = 31
	EncrKuznyechikMGMKTree    EncrID = 32 // RFC 9227
	EncrMagmaMGMKTree         EncrID = 33
	EncrKuznyechikMGMMACKTree EncrID = 34
	EncrMagmaMGMMACKTree      EncrID = 35
)

var encrNames = map[EncrID]string{
	EncrDESIV64: "ENCR_DES_IV64", EncrDES: "ENCR_DES", Encr3DES: "ENCR_3DES", EncrRC5: "ENCR_RC5",
	EncrIDEA: "ENCR_IDEA", EncrCAST: "ENCR_CAST", EncrBlowfish: "ENCR_BLOWFISH", Encr3IDEA: "ENCR_3IDEA",
	EncrDESIV32: "ENCR_DES_IV32", EncrNull: "ENCR_NULL", EncrAESCBC: "ENCR_AES_CBC",
	EncrAESCTR: "ENCR_AES_CTR", EncrAESCCM8: "ENCR_AES_CCM_8", EncrAESCCM12: "ENCR_AES_CCM_12",
	EncrAESCCM16: "ENCR_AES_CCM_16", EncrAESGCM8: "ENCR_AES_GCM_8", EncrAESGCM12: "ENCR_AES_GCM_12",
	EncrAESGCM16: "ENCR_AES_GCM_16", EncrNullAuthAESGMAC: "ENCR_NULL_AUTH_AES_GMAC",
	EncrCamelliaCBC: "ENCR_CAMELLIA_CBC", EncrCamelliaCTR: "ENCR_CAMELLIA_CTR",
	EncrCamelliaCCM8: "ENCR_CAMELLIA_CCM_8_ICV", EncrCamelliaCCM12: "ENCR_CAMELLIA_CCM_12_ICV",
	EncrCamelliaCCM16: "ENCR_CAMELLIA_CCM_16_ICV", EncrChaCha20Poly1305: "ENCR_CHACHA20_POLY1305",
	EncrAESCCM8IIV: "ENCR_AES_CCM_8_IIV", EncrAESGCM16IIV: "ENCR_AES_GCM_16_IIV",
	EncrChaCha20Poly1305IIV: "ENCR_CHACHA20_POLY1305_IIV",
	EncrKuznyechikMGMKTree:  "ENCR_KUZNYECHIK_MGM_KTREE", EncrMagmaMGMKTree: "ENCR_MAGMA_MGM_KTREE",
	EncrKuznyechikMGMMACKTree: "ENCR_KUZNYECHIK_MGM_MAC_KTREE", EncrMagmaMGMMACKTree: "ENCR_MAGMA_MGM_MAC_KTREE",
}

func (e EncrID) String() string { return regName(encrNames, e, "ENCR") }

// IsAEAD reports whether the algorithm is a combined mode (RFC 5282 §8): such
// proposals carry no INTEG transform, or INTEG NONE.
func (e EncrID) IsAEAD() bool {
	switch e {
	case EncrAESCCM8, EncrAESCCM12, EncrAESCCM16, EncrAESGCM8, EncrAESGCM12, EncrAESGCM16,
		EncrNullAuthAESGMAC, EncrCamelliaCCM8, EncrCamelliaCCM12, EncrCamelliaCCM16,
		EncrChaCha20Poly1305, EncrAESCCM8IIV, EncrAESGCM16IIV, EncrChaCha20Poly1305IIV,
		EncrKuznyechikMGMKTree, EncrMagmaMGMKTree, EncrKuznyechikMGMMACKTree, EncrMagmaMGMMACKTree:
		return true
	}
	return false
}

// PRFID is a Transform Type 2 (pseudorandom function) ID (RFC 7296 §3.3.2).
type PRFID uint16

const (
	PRFHMACMD5         PRFID = 1
	PRFHMACSHA1        PRFID = 2
	PRFHMACTiger       PRFID = 3
	PRFAES128XCBC      PRFID = 4 // RFC 4434
	PRFHMACSHA256      PRFID = 5 // RFC 4868
	PRFHMACSHA384      PRFID = 6
	PRFHMACSHA512      PRFID = 7
	PRFAES128CMAC      PRFID = 8 // RFC 4615
	PRFHMACStreebog512 PRFID = 9 // RFC 9385
)

var prfNames = map[PRFID]string{
	PRFHMACMD5: "PRF_HMAC_MD5", PRFHMACSHA1: "PRF_HMAC_SHA1", PRFHMACTiger: "PRF_HMAC_TIGER",
	PRFAES128XCBC: "PRF_AES128_XCBC", PRFHMACSHA256: "PRF_HMAC_SHA2_256",
	PRFHMACSHA384: "PRF_HMAC_SHA2_384", PRFHMACSHA512: "PRF_HMAC_SHA2_512",
	PRFAES128CMAC: "PRF_AES128_CMAC", PRFHMACStreebog512: "PRF_HMAC_STREEBOG_512",
}

func (p PRFID) String() string { return regName(prfNames, p, "PRF") }

// IntegID is a Transform Type 3 (integrity algorithm) ID (RFC 7296 §3.3.2).
type IntegID uint16

const (
	IntegNone           IntegID = 0
	IntegHMACMD5_96     IntegID = 1
	IntegHMACSHA1_96    IntegID = 2
	IntegDESMAC         IntegID = 3
	IntegKPDKMD5        IntegID = 4
	IntegAESXCBC96      IntegID = 5
	IntegHMACMD5_128    IntegID = 6
	IntegHMACSHA1_160   IntegID = 7
	IntegAESCMAC96      IntegID = 8
	IntegAES128GMAC     IntegID = 9
	IntegAES192GMAC     IntegID = 10
	IntegAES256GMAC     IntegID = 11
	IntegHMACSHA256_128 IntegID = 12 // RFC 4868
	IntegHMACSHA384_192 IntegID = 13
	IntegHMACSHA512_256 IntegID = 14
)

var integNames = map[IntegID]string{
	IntegNone: "NONE", IntegHMACMD5_96: "AUTH_HMAC_MD5_96", IntegHMACSHA1_96: "AUTH_HMAC_SHA1_96",
	IntegDESMAC: "AUTH_DES_MAC", IntegKPDKMD5: "AUTH_KPDK_MD5", IntegAESXCBC96: "AUTH_AES_XCBC_96",
	IntegHMACMD5_128: "AUTH_HMAC_MD5_128", IntegHMACSHA1_160: "AUTH_HMAC_SHA1_160",
	IntegAESCMAC96: "AUTH_AES_CMAC_96", IntegAES128GMAC: "AUTH_AES_128_GMAC",
	IntegAES192GMAC: "AUTH_AES_192_GMAC", IntegAES256GMAC: "AUTH_AES_256_GMAC",
	IntegHMACSHA256_128: "AUTH_HMAC_SHA2_256_128", IntegHMACSHA384_192: "AUTH_HMAC_SHA2_384_192",
	IntegHMACSHA512_256: "AUTH_HMAC_SHA2_512_256",
}

func (i IntegID) String() string { return regName(integNames, i, "INTEG") }

// GroupID is a Transform Type 4 (key exchange method, formerly D-H group) ID
// (RFC 7296 §3.3.2, RFC 9370).
type GroupID uint16

const (
	GroupNone            GroupID = 0
	GroupMODP768         GroupID = 1
	GroupMODP1024        GroupID = 2
	GroupMODP1536        GroupID = 5 // RFC 3526
	GroupMODP2048        GroupID = 14
	GroupMODP3072        GroupID = 15
	GroupMODP4096        GroupID = 16
	GroupMODP6144        GroupID = 17
	GroupMODP8192        GroupID = 18
	GroupECP256          GroupID = 19 // RFC 5903
	GroupECP384          GroupID = 20
	GroupECP521          GroupID = 21
	GroupMODP1024S160    GroupID = 22 // RFC 5114
	GroupMODP2048S224    GroupID = 23
	GroupMODP2048S256    GroupID = 24
	GroupECP192          GroupID = 25
	GroupECP224          GroupID = 26
	GroupBrainpoolP224r1 GroupID = 27 // RFC 6954
	GroupBrainpoolP256r1 GroupID = 28
	GroupBrainpoolP384r1 GroupID = 29
	GroupBrainpoolP512r1 GroupID = 30
	GroupCurve25519      GroupID = 31 // RFC 8031
	GroupCurve448        GroupID = 32
	GroupGOST3410_256    GroupID = 33 // RFC 9385
	GroupGOST3410_512    GroupID = 34
	GroupMLKEM512        GroupID = 35 // RFC 9370 registry, draft-ietf-ipsecme-ikev2-mlkem
	GroupMLKEM768        GroupID = 36
	GroupMLKEM1024       GroupID = 37
)

var groupNames = map[GroupID]string{
	GroupNone: "NONE", GroupMODP768: "768-bit MODP Group", GroupMODP1024: "1024-bit MODP Group",
	GroupMODP1536: "1536-bit MODP Group", GroupMODP2048: "2048-bit MODP Group",
	GroupMODP3072: "3072-bit MODP Group", GroupMODP4096: "4096-bit MODP Group",
	GroupMODP6144: "6144-bit MODP Group", GroupMODP8192: "8192-bit MODP Group",
	GroupECP256: "256-bit random ECP group", GroupECP384: "384-bit random ECP group",
	GroupECP521:       "521-bit random ECP group",
	GroupMODP1024S160: "1024-bit MODP Group with 160-bit Prime Order Subgroup",
	GroupMODP2048S224: "2048-bit MODP Group with 224-bit Prime Order Subgroup",
	GroupMODP2048S256: "2048-bit MODP Group with 256-bit Prime Order Subgroup",
	GroupECP192:       "192-bit Random ECP Group", GroupECP224: "224-bit Random ECP Group",
	GroupBrainpoolP224r1: "brainpoolP224r1", GroupBrainpoolP256r1: "brainpoolP256r1",
	GroupBrainpoolP384r1: "brainpoolP384r1", GroupBrainpoolP512r1: "brainpoolP512r1",
	GroupCurve25519: "Curve25519", GroupCurve448: "Curve448",
	GroupGOST3410_256: "GOST3410_2012_256", GroupGOST3410_512: "GOST3410_2012_512",
	GroupMLKEM512: "ml-kem-512", GroupMLKEM768: "ml-kem-768", GroupMLKEM1024: "ml-kem-1024",
}

func (g GroupID) String() string { return regName(groupNames, g, "GROUP") }

// ESNID is a Transform Type 5 (extended sequence numbers) ID (RFC 7296 §3.3.2).
type ESNID uint16

const (
	ESNNone    ESNID = 0
	ESNEnabled ESNID = 1
)

var esnNames = map[ESNID]string{ESNNone: "No Extended Sequence Numbers", ESNEnabled: "Extended Sequence Numbers"}

func (e ESNID) String() string { return regName(esnNames, e, "ESN") }

// IDType is an Identification payload ID Type (RFC 7296 §3.5, RFC 7619).
type IDType uint8

const (
	IDIPv4Addr   IDType = 1
	IDFQDN       IDType = 2
	IDRFC822Addr IDType = 3
	IDIPv6Addr   IDType = 5
	IDDERASN1DN  IDType = 9
	IDDERASN1GN  IDType = 10
	IDKeyID      IDType = 11
	IDFCName     IDType = 12 // RFC 4595
	IDNull       IDType = 13 // RFC 7619
)

var idTypeNames = map[IDType]string{
	IDIPv4Addr: "ID_IPV4_ADDR", IDFQDN: "ID_FQDN", IDRFC822Addr: "ID_RFC822_ADDR",
	IDIPv6Addr: "ID_IPV6_ADDR", IDDERASN1DN: "ID_DER_ASN1_DN", IDDERASN1GN: "ID_DER_ASN1_GN",
	IDKeyID: "ID_KEY_ID", IDFCName: "ID_FC_NAME", IDNull: "ID_NULL",
}

func (t IDType) String() string { return regName(idTypeNames, t, "ID") }

// AuthMethod is an AUTH payload Auth Method (RFC 7296 §3.8, RFC 4754, RFC 7427, RFC 7619).
type AuthMethod uint8

const (
	AuthRSASig           AuthMethod = 1
	AuthSharedKeyMIC     AuthMethod = 2
	AuthDSS              AuthMethod = 3
	AuthECDSA256         AuthMethod = 9
	AuthECDSA384         AuthMethod = 10
	AuthECDSA521         AuthMethod = 11
	AuthGSPM             AuthMethod = 12 // RFC 6467
	AuthNull             AuthMethod = 13
	AuthDigitalSignature AuthMethod = 14
)

var authNames = map[AuthMethod]string{
	AuthRSASig: "RSA Digital Signature", AuthSharedKeyMIC: "Shared Key Message Integrity Code",
	AuthDSS: "DSS Digital Signature", AuthECDSA256: "ECDSA with SHA-256 on the P-256 curve",
	AuthECDSA384: "ECDSA with SHA-384 on the P-384 curve", AuthECDSA521: "ECDSA with SHA-512 on the P-521 curve",
	AuthGSPM: "Generic Secure Password Authentication Method", AuthNull: "NULL Authentication",
	AuthDigitalSignature: "Digital Signature",
}

func (m AuthMethod) String() string { return regName(authNames, m, "AUTH") }

// HashAlgorithm is an IKEv2 Hash Algorithm (RFC 7427 §4, SIGNATURE_HASH_ALGORITHMS data).
type HashAlgorithm uint16

const (
	HashSHA1        HashAlgorithm = 1
	HashSHA256      HashAlgorithm = 2
	HashSHA384      HashAlgorithm = 3
	HashSHA512      HashAlgorithm = 4
	HashIdentity    HashAlgorithm = 5 // RFC 8420
	HashStreebog256 HashAlgorithm = 6 // RFC 9385
	HashStreebog512 HashAlgorithm = 7
)

var hashNames = map[HashAlgorithm]string{
	HashSHA1: "SHA1", HashSHA256: "SHA2-256", HashSHA384: "SHA2-384", HashSHA512: "SHA2-512",
	HashIdentity: "Identity", HashStreebog256: "STREEBOG_256", HashStreebog512: "STREEBOG_512",
}

func (h HashAlgorithm) String() string { return regName(hashNames, h, "HASH") }

// CertEncoding is a CERT/CERTREQ Certificate Encoding (RFC 7296 §3.6, RFC 4806, RFC 7670).
type CertEncoding uint8

const (
	CertPKCS7X509         CertEncoding = 1
	CertPGP               CertEncoding = 2
	CertDNSSignedKey      CertEncoding = 3
	CertX509Signature     CertEncoding = 4
	CertKerberosToken     CertEncoding = 6
	CertCRL               CertEncoding = 7
	CertARL               CertEncoding = 8
	CertSPKI              CertEncoding = 9
	CertX509Attribute     CertEncoding = 10
	CertRawRSAKey         CertEncoding = 11
	CertHashURLX509       CertEncoding = 12
	CertHashURLX509Bundle CertEncoding = 13
	CertOCSPContent       CertEncoding = 14
	CertRawPublicKey      CertEncoding = 15
)

var certNames = map[CertEncoding]string{
	CertPKCS7X509: "PKCS #7 wrapped X.509 certificate", CertPGP: "PGP Certificate",
	CertDNSSignedKey: "DNS Signed Key", CertX509Signature: "X.509 Certificate - Signature",
	CertKerberosToken: "Kerberos Token", CertCRL: "Certificate Revocation List (CRL)",
	CertARL: "Authority Revocation List (ARL)", CertSPKI: "SPKI Certificate",
	CertX509Attribute: "X.509 Certificate - Attribute", CertRawRSAKey: "Raw RSA Key",
	CertHashURLX509: "Hash and URL of X.509 certificate", CertHashURLX509Bundle: "Hash and URL of X.509 bundle",
	CertOCSPContent: "OCSP Content", CertRawPublicKey: "Raw Public Key",
}

func (c CertEncoding) String() string { return regName(certNames, c, "CERT") }

// TSType is a Traffic Selector Type (RFC 7296 §3.13.1).
type TSType uint8

const (
	TSIPv4AddrRange TSType = 7
	TSIPv6AddrRange TSType = 8
	TSFCAddrRange   TSType = 9  // RFC 4595
	TSSecLabel      TSType = 10 // RFC 9478
)

var tsNames = map[TSType]string{
	TSIPv4AddrRange: "TS_IPV4_ADDR_RANGE", TSIPv6AddrRange: "TS_IPV6_ADDR_RANGE",
	TSFCAddrRange: "TS_FC_ADDR_RANGE", TSSecLabel: "TS_SECLABEL",
}

func (t TSType) String() string { return regName(tsNames, t, "TS") }

// CPType is a Configuration payload CFG Type (RFC 7296 §3.15).
type CPType uint8

const (
	CFGRequest CPType = 1
	CFGReply   CPType = 2
	CFGSet     CPType = 3
	CFGAck     CPType = 4
)

var cpTypeNames = map[CPType]string{CFGRequest: "CFG_REQUEST", CFGReply: "CFG_REPLY", CFGSet: "CFG_SET", CFGAck: "CFG_ACK"}

func (t CPType) String() string { return regName(cpTypeNames, t, "CFG") }

// CPAttributeType is a Configuration Attribute Type (RFC 7296 §3.15.1), 15 bits.
type CPAttributeType uint16

const (
	CPInternalIP4Address   CPAttributeType = 1
	CPInternalIP4Netmask   CPAttributeType = 2
	CPInternalIP4DNS       CPAttributeType = 3
	CPInternalIP4NBNS      CPAttributeType = 4
	CPInternalIP4DHCP      CPAttributeType = 6
	CPApplicationVersion   CPAttributeType = 7
	CPInternalIP6Address   CPAttributeType = 8
	CPInternalIP6DNS       CPAttributeType = 10
	CPInternalIP6DHCP      CPAttributeType = 12
	CPInternalIP4Subnet    CPAttributeType = 13
	CPSupportedAttributes  CPAttributeType = 14
	CPInternalIP6Subnet    CPAttributeType = 15
	CPMIP6HomePrefix       CPAttributeType = 16 // RFC 5026
	CPInternalIP6Link      CPAttributeType = 17 // RFC 5739
	CPInternalIP6Prefix    CPAttributeType = 18 // RFC 5739
	CPHomeAgentAddress     CPAttributeType = 19 // RFC 5026
	CPPCSCFIP4Address      CPAttributeType = 20 // RFC 7651
	CPPCSCFIP6Address      CPAttributeType = 21 // RFC 7651
	CPFTTKAT               CPAttributeType = 22 // RFC 6311
	CPExternalSourceIP4NAT CPAttributeType = 23 // RFC 7785
	CPTimeoutLivenessCheck CPAttributeType = 24 // 3GPP TS 24.302
	CPInternalDNSDomain    CPAttributeType = 25 // RFC 8598
	CPInternalDNSSECTA     CPAttributeType = 26 // RFC 8598
)

var cpAttrNames = map[CPAttributeType]string{
	CPInternalIP4Address: "INTERNAL_IP4_ADDRESS", CPInternalIP4Netmask: "INTERNAL_IP4_NETMASK",
	CPInternalIP4DNS: "INTERNAL_IP4_DNS", CPInternalIP4NBNS: "INTERNAL_IP4_NBNS",
	CPInternalIP4DHCP: "INTERNAL_IP4_DHCP", CPApplicationVersion: "APPLICATION_VERSION",
	CPInternalIP6Address: "INTERNAL_IP6_ADDRESS", CPInternalIP6DNS: "INTERNAL_IP6_DNS",
	CPInternalIP6DHCP: "INTERNAL_IP6_DHCP", CPInternalIP4Subnet: "INTERNAL_IP4_SUBNET",
	CPSupportedAttributes: "SUPPORTED_ATTRIBUTES", CPInternalIP6Subnet: "INTERNAL_IP6_SUBNET",
	CPMIP6HomePrefix: "MIP6_HOME_PREFIX", CPInternalIP6Link: "INTERNAL_IP6_LINK",
	CPInternalIP6Prefix: "INTERNAL_IP6_PREFIX", CPHomeAgentAddress: "HOME_AGENT_ADDRESS",
	CPPCSCFIP4Address: "P_CSCF_IP4_ADDRESS", CPPCSCFIP6Address: "P_CSCF_IP6_ADDRESS",
	CPFTTKAT: "FTT_KAT", CPExternalSourceIP4NAT: "EXTERNAL_SOURCE_IP4_NAT_INFO",
	CPTimeoutLivenessCheck: "TIMEOUT_PERIOD_FOR_LIVENESS_CHECK",
	CPInternalDNSDomain:    "INTERNAL_DNS_DOMAIN", CPInternalDNSSECTA: "INTERNAL_DNSSEC_TA",
}

func (t CPAttributeType) String() string { return regName(cpAttrNames, t, "CP_ATTRIBUTE") }

// NotifyType is a Notify Message Type (RFC 7296 §3.10.1). Values below 16384
// are errors, the rest status (RFC 7296 §3.10).
type NotifyType uint16

// Error types.
const (
	UnsupportedCriticalPayload NotifyType = 1
	InvalidIKESPI              NotifyType = 4
	InvalidMajorVersion        NotifyType = 5
	InvalidSyntax              NotifyType = 7
	InvalidMessageID           NotifyType = 9
	InvalidSPI                 NotifyType = 11
	NoProposalChosen           NotifyType = 14
	InvalidKEPayload           NotifyType = 17
	AuthenticationFailed       NotifyType = 24
	SinglePairRequired         NotifyType = 34
	NoAdditionalSAs            NotifyType = 35
	InternalAddressFailure     NotifyType = 36
	FailedCPRequired           NotifyType = 37
	TSUnacceptable             NotifyType = 38
	InvalidSelectors           NotifyType = 39
	UnacceptableAddresses      NotifyType = 40 // RFC 4555
	UnexpectedNATDetected      NotifyType = 41 // RFC 4555
	UseAssignedHoA             NotifyType = 42 // RFC 5026
	TemporaryFailure           NotifyType = 43
	ChildSANotFound            NotifyType = 44
	InvalidGroupID             NotifyType = 45 // RFC 9838
	AuthorizationFailed        NotifyType = 46 // RFC 9838
	StateNotFound              NotifyType = 47 // RFC 9370
	TSMaxQueue                 NotifyType = 48 // RFC 9611
)

// Status types.
const (
	InitialContact                  NotifyType = 16384
	SetWindowSize                   NotifyType = 16385
	AdditionalTSPossible            NotifyType = 16386
	IPCompSupported                 NotifyType = 16387
	NATDetectionSourceIP            NotifyType = 16388
	NATDetectionDestinationIP       NotifyType = 16389
	Cookie                          NotifyType = 16390
	UseTransportMode                NotifyType = 16391
	HTTPCertLookupSupported         NotifyType = 16392
	RekeySA                         NotifyType = 16393
	ESPTFCPaddingNotSupported       NotifyType = 16394
	NonFirstFragmentsAlso           NotifyType = 16395
	MOBIKESupported                 NotifyType = 16396 // RFC 4555
	AdditionalIP4Address            NotifyType = 16397
	AdditionalIP6Address            NotifyType = 16398
	NoAdditionalAddresses           NotifyType = 16399
	UpdateSAAddresses               NotifyType = 16400
	Cookie2                         NotifyType = 16401
	NoNATsAllowed                   NotifyType = 16402
	AuthLifetime                    NotifyType = 16403 // RFC 4478
	MultipleAuthSupported           NotifyType = 16404 // RFC 4739
	AnotherAuthFollows              NotifyType = 16405
	RedirectSupported               NotifyType = 16406 // RFC 5685
	Redirect                        NotifyType = 16407
	RedirectedFrom                  NotifyType = 16408
	TicketLTOpaque                  NotifyType = 16409 // RFC 5723
	TicketRequest                   NotifyType = 16410
	TicketAck                       NotifyType = 16411
	TicketNack                      NotifyType = 16412
	TicketOpaque                    NotifyType = 16413
	LinkID                          NotifyType = 16414 // RFC 5739
	UseWESPMode                     NotifyType = 16415 // RFC 5840
	ROHCSupported                   NotifyType = 16416 // RFC 5857
	EAPOnlyAuthentication           NotifyType = 16417 // RFC 5998
	ChildlessIKEv2Supported         NotifyType = 16418 // RFC 6023
	QuickCrashDetection             NotifyType = 16419 // RFC 6290
	IKEv2MessageIDSyncSupported     NotifyType = 16420 // RFC 6311
	IPsecReplayCounterSyncSupported NotifyType = 16421
	IKEv2MessageIDSync              NotifyType = 16422
	IPsecReplayCounterSync          NotifyType = 16423
	SecurePasswordMethods           NotifyType = 16424 // RFC 6467
	PSKPersist                      NotifyType = 16425 // RFC 6631
	PSKConfirm                      NotifyType = 16426
	ERXSupported                    NotifyType = 16427 // RFC 6867
	IFOMCapability                  NotifyType = 16428
	SenderRequestID                 NotifyType = 16429
	IKEv2FragmentationSupported     NotifyType = 16430 // RFC 7383
	SignatureHashAlgorithms         NotifyType = 16431 // RFC 7427
	CloneIKESASupported             NotifyType = 16432 // RFC 7791
	CloneIKESA                      NotifyType = 16433 // RFC 7791
	Puzzle                          NotifyType = 16434 // RFC 8019
	UsePPK                          NotifyType = 16435 // RFC 8784
	PPKIdentity                     NotifyType = 16436
	NoPPKAuth                       NotifyType = 16437
	IntermediateExchangeSupported   NotifyType = 16438 // RFC 9242
	IP4Allowed                      NotifyType = 16439 // RFC 8983
	IP6Allowed                      NotifyType = 16440
	AdditionalKeyExchange           NotifyType = 16441 // RFC 9370
	UseAggFrag                      NotifyType = 16442 // RFC 9347
	SupportedAuthMethods            NotifyType = 16443 // RFC 9593
	SAResourceInfo                  NotifyType = 16444 // RFC 9611
)

var notifyNames = map[NotifyType]string{
	UnsupportedCriticalPayload: "UNSUPPORTED_CRITICAL_PAYLOAD", InvalidIKESPI: "INVALID_IKE_SPI",
	InvalidMajorVersion: "INVALID_MAJOR_VERSION", InvalidSyntax: "INVALID_SYNTAX",
	InvalidMessageID: "INVALID_MESSAGE_ID", InvalidSPI: "INVALID_SPI",
	NoProposalChosen: "NO_PROPOSAL_CHOSEN", InvalidKEPayload: "INVALID_KE_PAYLOAD",
	AuthenticationFailed: "AUTHENTICATION_FAILED", SinglePairRequired: "SINGLE_PAIR_REQUIRED",
	NoAdditionalSAs: "NO_ADDITIONAL_SAS", InternalAddressFailure: "INTERNAL_ADDRESS_FAILURE",
	FailedCPRequired: "FAILED_CP_REQUIRED", TSUnacceptable: "TS_UNACCEPTABLE",
	InvalidSelectors: "INVALID_SELECTORS", UnacceptableAddresses: "UNACCEPTABLE_ADDRESSES",
	UnexpectedNATDetected: "UNEXPECTED_NAT_DETECTED", UseAssignedHoA: "USE_ASSIGNED_HoA",
	TemporaryFailure: "TEMPORARY_FAILURE", ChildSANotFound: "CHILD_SA_NOT_FOUND",
	InvalidGroupID: "INVALID_GROUP_ID", AuthorizationFailed: "AUTHORIZATION_FAILED",
	StateNotFound: "STATE_NOT_FOUND", TSMaxQueue: "TS_MAX_QUEUE",

	InitialContact: "INITIAL_CONTACT", SetWindowSize: "SET_WINDOW_SIZE",
	AdditionalTSPossible: "ADDITIONAL_TS_POSSIBLE", IPCompSupported: "IPCOMP_SUPPORTED",
	NATDetectionSourceIP: "NAT_DETECTION_SOURCE_IP", NATDetectionDestinationIP: "NAT_DETECTION_DESTINATION_IP",
	Cookie: "COOKIE", UseTransportMode: "USE_TRANSPORT_MODE",
	HTTPCertLookupSupported: "HTTP_CERT_LOOKUP_SUPPORTED", RekeySA: "REKEY_SA",
	ESPTFCPaddingNotSupported: "ESP_TFC_PADDING_NOT_SUPPORTED", NonFirstFragmentsAlso: "NON_FIRST_FRAGMENTS_ALSO",
	MOBIKESupported: "MOBIKE_SUPPORTED", AdditionalIP4Address: "ADDITIONAL_IP4_ADDRESS",
	AdditionalIP6Address: "ADDITIONAL_IP6_ADDRESS", NoAdditionalAddresses: "NO_ADDITIONAL_ADDRESSES",
	UpdateSAAddresses: "UPDATE_SA_ADDRESSES", Cookie2: "COOKIE2", NoNATsAllowed: "NO_NATS_ALLOWED",
	AuthLifetime: "AUTH_LIFETIME", MultipleAuthSupported: "MULTIPLE_AUTH_SUPPORTED",
	AnotherAuthFollows: "ANOTHER_AUTH_FOLLOWS", RedirectSupported: "REDIRECT_SUPPORTED",
	Redirect: "REDIRECT", RedirectedFrom: "REDIRECTED_FROM", TicketLTOpaque: "TICKET_LT_OPAQUE",
	TicketRequest: "TICKET_REQUEST", TicketAck: "TICKET_ACK", TicketNack: "TICKET_NACK",
	TicketOpaque: "TICKET_OPAQUE", LinkID: "LINK_ID", UseWESPMode: "USE_WESP_MODE",
	ROHCSupported: "ROHC_SUPPORTED", EAPOnlyAuthentication: "EAP_ONLY_AUTHENTICATION",
	ChildlessIKEv2Supported: "CHILDLESS_IKEV2_SUPPORTED", QuickCrashDetection: "QUICK_CRASH_DETECTION",
	IKEv2MessageIDSyncSupported:     "IKEV2_MESSAGE_ID_SYNC_SUPPORTED",
	IPsecReplayCounterSyncSupported: "IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED",
	IKEv2MessageIDSync:              "IKEV2_MESSAGE_ID_SYNC", IPsecReplayCounterSync: "IPSEC_REPLAY_COUNTER_SYNC",
	SecurePasswordMethods: "SECURE_PASSWORD_METHODS", PSKPersist: "PSK_PERSIST", PSKConfirm: "PSK_CONFIRM",
	ERXSupported: "ERX_SUPPORTED", IFOMCapability: "IFOM_CAPABILITY", SenderRequestID: "SENDER_REQUEST_ID",
	IKEv2FragmentationSupported: "IKEV2_FRAGMENTATION_SUPPORTED",
	SignatureHashAlgorithms:     "SIGNATURE_HASH_ALGORITHMS",
	CloneIKESASupported:         "CLONE_IKE_SA_SUPPORTED", CloneIKESA: "CLONE_IKE_SA", Puzzle: "PUZZLE",
	UsePPK: "USE_PPK", PPKIdentity: "PPK_IDENTITY", NoPPKAuth: "NO_PPK_AUTH",
	IntermediateExchangeSupported: "INTERMEDIATE_EXCHANGE_SUPPORTED",
	IP4Allowed:                    "IP4_ALLOWED", IP6Allowed: "IP6_ALLOWED",
	AdditionalKeyExchange: "ADDITIONAL_KEY_EXCHANGE", UseAggFrag: "USE_AGGFRAG",
	SupportedAuthMethods: "SUPPORTED_AUTH_METHODS", SAResourceInfo: "SA_RESOURCE_INFO",
}

func (n NotifyType) String() string { return regName(notifyNames, n, "NOTIFY") }

// IsError reports whether n is an error type (RFC 7296 §3.10.1: below 16384).
func (n NotifyType) IsError() bool { return n < 16384 }
