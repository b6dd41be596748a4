// Package transform owns the cryptography of IKEv2: proposal parsing,
// formatting and selection, Diffie-Hellman groups, the PRF and key
// derivation (SKEYSEED, prf+, KEYMAT), protection of the SK and SKF
// payloads, and AUTH (shared keys, RFC 7427 signatures, X.509 chains).
//
// It imports only the standard library, golang.org/x/crypto and the wire
// constants of engine/ike. It never imports the rest of the engine, gRPC or
// protobuf, and it does no I/O: randomness comes from an io.Reader given by
// the caller or from crypto/rand.
//
// Every type holding key material prints "[redacted]" with any fmt verb and
// has a Zero or Destroy method that overwrites it. Nothing clears what its
// holder forgets: every holder zeroes its keys when it drops them.
package transform
