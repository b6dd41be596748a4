// Package vici is a client for strongSwan's Versatile IKE Control
// Interface, written from the protocol description in strongSwan's
// src/libcharon/plugins/vici/README.md.
//
// Layers, as in the README: a transport of segments with a 32-bit length
// (at most 512 KiB), packets whose first byte is the type (CMD_REQUEST ..
// EVENT) followed by an optional 8-bit-length name, and messages: ordered
// trees of sections, key/values and lists (Message). Decoding treats the
// daemon's bytes as untrusted: malformations give *DecodeError, never a
// panic.
//
// Client runs one command at a time per connection (vici has no request
// ids), collects streamed commands (list-sas → list-sa events, initiate and
// terminate → control-log), honours context deadlines and cancellation, and
// redials after an interrupted exchange. Subscribe opens its own connection
// for ike-updown, child-updown, ike-rekey, child-rekey (or any other event)
// and delivers them on a bounded channel. Answers are parsed into IKESA and
// ChildSA values; charon's failures come back as *CommandError with its
// errmsg and the control-log lines.
//
// Test support only: it imports the standard library and nothing of mifsec.
package vici
