// Package ike is the RFC 7296 IKEv2 message codec: the IKE header, every payload
// (SA, KE, IDi/IDr, CERT, CERTREQ, AUTH, Nonce, Notify, Delete, Vendor ID,
// TSi/TSr, SK, CP, EAP, SKF), the typed IANA registries, and RFC 7383
// fragmentation and reassembly of the (already decrypted) inner payload chain.
//
// It owns wire formats only: no cryptography (engine/transform encrypts and
// authenticates the SK/SKF bodies, using the AAD offsets exported here), no
// state, no I/O, no logging. Decode errors are *Error values carrying the
// notify the receiver should send back.
//
// This package must import only the Go standard library (a test enforces it).
package ike
