package userspace

import "sync/atomic"

// DropReason names a drop this data plane decides outside ESP processing
// (ESP drops use esp.DropReason and are counted per SA by engine/esp).
type DropReason uint8

const (
	DropNoPolicy        DropReason = iota + 1 // outbound packet matches no policy
	DropPolicyDiscard                         // outbound policy action is discard or bypass
	DropNoSA                                  // policy has no installed outbound SA (Acquire raised)
	DropMalformed                             // not an IP packet, or a UDP payload that is neither ESP, IKE nor keepalive
	DropTruncated                             // datagram larger than the receive buffer
	DropTooManySegments                       // TUN superpacket could not be split into one batch
	DropSendError                             // the UDP send failed
	DropTUNWrite                              // the kernel refused a packet written to the TUN
	DropBadInner                              // inbound inner packet not IP, or no room for the TUN header
	DropFragment                              // outbound fragment on a transport-mode SA (RFC 4303 §3.1.1: whole datagrams only)
	numDataDrops
)

var dataDropNames = [numDataDrops]string{
	DropNoPolicy:        "no_policy",
	DropPolicyDiscard:   "policy_discard",
	DropNoSA:            "no_sa",
	DropMalformed:       "malformed",
	DropTruncated:       "truncated",
	DropTooManySegments: "too_many_segments",
	DropSendError:       "send_error",
	DropTUNWrite:        "tun_write",
	DropBadInner:        "bad_inner",
	DropFragment:        "transport_fragment",
}

// String gives the snake_case counter label.
func (r DropReason) String() string {
	if r > 0 && r < numDataDrops {
		return dataDropNames[r]
	}
	return "unknown"
}

// dataDrops counts DropReasons; safe for concurrent use.
type dataDrops [numDataDrops]atomic.Uint64

func (d *dataDrops) inc(r DropReason) { d[r].Add(1) }

func (d *dataDrops) addTo(m map[string]uint64) {
	for r := DropReason(1); r < numDataDrops; r++ {
		if v := d[r].Load(); v != 0 {
			m[r.String()] += v
		}
	}
}
