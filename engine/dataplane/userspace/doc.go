// Package userspace is the data plane that runs ESP in Go: inner packets come
// and go through a TUN device, ESP-in-UDP (RFC 3948) through one UDP socket
// per local outer address, shared with IKE by the non-ESP marker.
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
// keepalives, looks the SPI up, and queues the batch the same way: the
// workers Open (replay check, ICV, window update) and check the inner
// packet against the SA's selectors, and one writer hands the batch to the
// TUN, coalescing TCP segments into superpackets.
//
// Batches and their buffers come from bounded free lists allocated at
// start: a full pipeline makes the readers wait, and the steady state does
// not allocate per packet.
//
// Only tunnel mode with UDP encapsulation is carried; AddSA refuses
// transport mode and plain ESP (IP protocol 50) with ErrUnsupported.
package userspace
