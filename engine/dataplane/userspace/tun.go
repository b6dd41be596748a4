package userspace

// tunDevice is the TUN edge of the data plane. Read is called by one
// goroutine only, and so is Write; they may run at the same time.
//
// Buffers carry headroom: packet i lives at bufs[i][offset:], and the bytes
// before it belong to the caller (outbound: room for the ESP header) or to
// the device (inbound: offset >= tunHeadroom, room for the virtio header).
type tunDevice interface {
	// Read reads at least one packet, at most len(bufs), into bufs[i][offset:]
	// and sets sizes[i]. A superpacket from the kernel is returned already
	// split. It returns the number of packets.
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	// Write hands the IP packets bufs[i][offset:] to the kernel, in order per
	// flow. It may coalesce them and may modify them.
	Write(bufs [][]byte, offset int) error
	// Stats reports packets the device itself had to drop.
	Stats() tunStats
	Close() error
}

// tunHeadroom is the headroom Write needs before every packet.
const tunHeadroom = vnetHdrLen

// tunStats counts what the device dropped.
type tunStats struct {
	ReadDrops  uint64 // superpackets that could not be split
	WriteDrops uint64 // packets the kernel refused
	Coalesced  uint64 // packets written as part of a superpacket
	Writes     uint64 // write calls
}
