// Package sa holds the sans-IO IKEv2 state machines (RFC 7296): one IKE
// value is one IKE SA, in either role, with its Child SAs. It also holds the
// stateless responder helpers the dispatcher needs before an IKE SA exists:
// cookies and the half-open counter (RFC 7296 §2.6) and the INVALID_IKE_SPI
// reply builder (§2.21.4).
//
// Contract with the glue (package engine), DESIGN.md §3:
//
//   - Everything comes in through NewInitiator, NewResponder and
//     (*IKE).Handle, each given the current time; nothing runs on its own.
//     Inputs are Datagrams (IKE messages, non-ESP marker removed), Commands
//     from the API, Ticks (a Deadline asked for has passed) and
//     DataplaneEvents (SA expiry).
//   - Every call returns an Output: datagrams to send, data-plane operations
//     to apply in order, events for the API, the next Deadline (zero: none),
//     the local IKE SPIs the glue must start (Bind) or stop (Unbind) routing
//     to this machine, and Done when the machine may be dropped.
//   - A machine is not safe for concurrent use: the glue calls it from its
//     one state goroutine.
//   - Rekeys are make-before-break in the data plane: a rekey responder
//     keeps sending on the old SA until the initiator deletes it, and a
//     replaced SA's inbound half stays Config.RekeyedDelete after the
//     DELETE exchange, for packets sealed before the peer switched (RFC
//     7296 §2.8). Such a half is no longer a Child SA: Info does not list
//     it and its OpDeleteSA comes later without an event.
//   - MOBIKE (RFC 4555), when Config.MOBIKE is set and the peer announced
//     it: Config.AdditionalAddrs are announced in IKE_AUTH and CmdAnnounce
//     replaces them (both roles); with a Local/Remote pair it goes out on
//     that pair (our address in use is gone, §3.6). EventPeerAddresses
//     carries the pair the peer's list came on. CmdMigrate moves the IKE SA and all its
//     Child SAs make-before-break (path test, then UPDATE_SA_ADDRESSES with
//     COOKIE2); only the MOBIKE initiator (Info.MOBIKEInitiator, kept
//     through IKE rekeys) may, a responder gets EventMigrateFailed. A move
//     ends with OpUpdateSA for both halves of every Child SA and
//     EventMigrated (old and new pair, reason), or EventMigrateFailed with
//     nothing changed. CmdProbe tests a pair and answers EventProbe. The
//     responder applies the peer's UPDATE_SA_ADDRESSES after
//     Config.AcceptAddress. When a request on the path in use stays
//     unanswered, the MOBIKE initiator also sends it on every other pair of
//     our and the peer's addresses (Info.LocalAddrs × PeerAddrs) and moves
//     to the first that answers (reason path_failed). Datagrams may
//     therefore carry any of our addresses as Local: the glue sends from it.
//   - RFC 7791: CmdClone (both sides Config.Clone, the peer announced it)
//     yields Output.Spawn with the clone, whose EventIKEUp has ClonedFrom;
//     the responder's clone arrives the same way. The clone has no Child
//     SAs; the glue moves it with CmdMigrate and gives it its own path tag
//     with CmdSetPath (Config.Path of the Child SAs created afterwards).
//     Without support the answer is EventCloneFailed.
//
// The package owns the IKEv2 exchanges (IKE_SA_INIT, IKE_AUTH,
// CREATE_CHILD_SA, INFORMATIONAL), message IDs, the window of one,
// retransmission, the response cache, RFC 7383 fragmentation, NAT
// detection, lifetimes, rekeying and its collisions, and the translation of
// negotiated Child SAs into engine/dataplane SAs and policies. The wire
// codec is engine/ike, the cryptography engine/transform.
//
// It must not import gen/, server/, client/, grpc or protobuf, must not open
// sockets, read the clock (time.Now), start goroutines or keep globals.
// Randomness comes from the io.Reader given to the constructors.
package sa
