// Package esp implements RFC 4303 ESP packet processing as a pure library:
// sealing and opening packets in place for one SA in one direction, the
// anti-replay window (RFC 4303 §3.4.3 with an RFC 6479 bitmap) and ESN
// inference (RFC 4303 Appendix A), TFC padding and dummy packets (§2.7, §2.6),
// per-SA counters, lifetimes and sequence-number exhaustion (§3.3.3), and the
// RFC 3948 helpers that tell ESP, IKE and NAT-keepalives apart on UDP 4500.
//
// Suites: AES-GCM-16 (RFC 4106), ChaCha20-Poly1305 (RFC 7634) and AES-CBC with
// HMAC-SHA1-96 / HMAC-SHA2 (RFC 3602, RFC 2404, RFC 4868) for interoperability.
//
// Use, outbound: head, tail := sa.Overhead() sizes the buffer; seq :=
// sa.NextSeq() in packet order; sa.SealInPlace(buf, n, nh, seq) on any
// goroutine. Inbound: Classify a UDP/4500 payload, PeekSPI to find the SA,
// sa.Open(pkt). After either, sa.TakeEvents() reports soft/hard lifetime and
// sequence exhaustion once each; hard expiry and exhaustion also make Seal
// and Open fail with a *DropError. Zero the SA after its last use.
//
// The package does no I/O, starts no goroutines and keeps no globals that hold
// state. Seal and Open allocate nothing per packet. It imports only the
// standard library, golang.org/x/crypto and the types of engine/dataplane; it
// must never import gen/, server/, grpc, protobuf or another data plane.
package esp
