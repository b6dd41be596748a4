// Package userspace is the data plane that runs ESP in Go: inner packets come
// and go through a TUN device, ESP-in-UDP (RFC 3948) through one UDP socket
// per local outer address, shared with IKE by the non-ESP marker, and plain
// ESP (IP protocol 50, RFC 4303 §2) through one raw IP socket per address
// family (CAP_NET_RAW), opened by the first SA without encapsulation.
// Outer addresses may be IPv4 or IPv6; inner packets may be either,
// whatever the outer family.
//
// It owns the TUN link, the UDP sockets, the SA and policy tables and the
// packet pipeline. It must not import gen/, server/, grpc or protobuf; the
// ESP transform itself is engine/esp.
//
// # Pipeline
//
// Outbound (send.go): one goroutine reads the TUN in batches (TSO
// superpackets are split here), classifies each packet (5-tuple, DSCP),
// picks the policy and, through the steering hook, the SA, and takes the
// SA's next sequence number: everything that must be sequential. The batch
// then goes, locked, both to the crypto workers (parallel SealInPlace, which
// unlock it) and to the sender's queue; the sender waits for each batch in
// queue order and writes it out with sendmmsg/UDP GSO. Per-SA order is the
// order of the queue, so no reorder buffer is needed.
//
// Inbound (recv.go): one goroutine per socket reads batches with
// recvmmsg/UDP GRO, hands IKE datagrams to the IKE handler, drops
// keepalives (a raw socket carries ESP only: no marker, no keepalive),
// looks the SPI up, and queues the batch the same way: the workers Open
// (replay check, ICV, window update), rebuild the IP header of
// transport-mode packets in a per-batch slab, and check the inner packet
// against the SA's selectors, and one writer hands the batch to the TUN,
// coalescing TCP segments into superpackets.
//
// Batches and their buffers come from bounded free lists allocated at
// start: a full pipeline makes the readers wait, and the steady state does
// not allocate per packet.
//
// # Modes
//
// Tunnel mode seals the whole inner packet (Next Header 4 or 41). Transport
// mode (RFC 4303 §3.1.1, host to host; transport.go) needs the engine to
// route the peer's own address into the TUN: the IP header of an outbound
// packet is dropped and the rest sealed with Next Header = its protocol;
// inbound, an IP header is rebuilt in front of the opened payload, from
// the SA's single-host selectors (checksums stay valid: the peer's policy
// used the same addresses) or else from its outer addresses (TCP, UDP and
// ICMPv6 checksums recomputed, RFC 3948 §3.1.2). Transport mode refuses
// fragments (counted as transport_fragment) and does not carry IPv4
// options or the TOS byte.
//
// Counters count inner bytes and packets sealed, or opened and delivered: a
// packet opened and then dropped (selector mismatch) is only a drop.
package userspace
