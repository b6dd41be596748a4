package esp

import (
	"runtime"
	"strconv"
	"sync/atomic"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// Config describes one SA in one direction.
type Config struct {
	SPI   uint32
	Suite dataplane.Suite
	Keys  dataplane.Keys // copied by NewSA; the caller may zero its copy
	ESN   bool           // 64-bit sequence numbers (RFC 4303 §2.2.1)
	Mode  dataplane.Mode
	// ReplayWindow in packets, 0..MaxReplayWindow; 0 turns anti-replay off.
	// Inbound only.
	ReplayWindow int
	// TFCPadding pads outbound tunnel-mode packets (RFC 4303 §2.7) up to a
	// multiple of TFCGranule bytes. Inbound SAs strip TFC padding always.
	TFCPadding bool
	Limits     dataplane.Limits
}

// TFCGranule is the size to which TFC padding rounds the inner packet up.
const TFCGranule = 64

// Next Header values with a meaning here (IANA Protocol Numbers).
const (
	NextHeaderIPv4  uint8 = 4  // tunnel mode, RFC 4303 §2.3
	NextHeaderIPv6  uint8 = 41 // tunnel mode
	NextHeaderDummy uint8 = 59 // dummy packet, RFC 4303 §2.6
)

// SA is one ESP SA in one direction. Seal (NextSeq, SealInPlace) and Open
// may run on many goroutines at once. String never shows keys.
type SA struct {
	spi    uint32
	suite  dataplane.Suite
	mode   dataplane.Mode
	esn    bool
	tfc    bool
	p      params
	limits dataplane.Limits

	seqMax, seqSoft uint64

	ks atomic.Pointer[keyed] // nil once zeroed

	// Written per packet: kept off the cache line of the fields above,
	// which every Seal and Open reads.
	_       cacheLinePad
	seq     atomic.Uint64 // last sequence number issued by NextSeq
	_       cacheLinePad
	bytes   atomic.Uint64
	packets atomic.Uint64
	hard    atomic.Bool
	raised  atomic.Uint32 // LimitEvent raised so far
	pending atomic.Uint32 // LimitEvent not yet taken
	_       cacheLinePad
	drops   Drops

	replay replayWindow
}

type cacheLinePad [64]byte

// NewSA validates c and builds the SA. It copies the keys.
func NewSA(c Config) (*SA, error) {
	p, ok := suiteParams(c.Suite)
	if !ok {
		return nil, &ConfigError{Field: "suite", Reason: "unknown suite " + strconv.Itoa(int(c.Suite))}
	}
	if len(c.Keys.Enc) != p.encKey {
		return nil, &ConfigError{Field: "keys.enc", Reason: "want " + strconv.Itoa(p.encKey) + " bytes for " + c.Suite.String() + ", have " + strconv.Itoa(len(c.Keys.Enc))}
	}
	return newSA(c, p)
}

// newSA builds an SA without checking the encryption key length against the
// suite, so tests can run AES-192-GCM vectors through a GCM suite.
func newSA(c Config, p params) (*SA, error) {
	if len(c.Keys.Integ) != p.integ {
		return nil, &ConfigError{Field: "keys.integ", Reason: "want " + strconv.Itoa(p.integ) + " bytes for " + c.Suite.String() + ", have " + strconv.Itoa(len(c.Keys.Integ))}
	}
	if p.aead && len(c.Keys.Enc) <= saltLen {
		return nil, &ConfigError{Field: "keys.enc", Reason: "shorter than the salt"}
	}
	if c.Mode != dataplane.Tunnel && c.Mode != dataplane.Transport {
		return nil, &ConfigError{Field: "mode", Reason: "neither tunnel nor transport"}
	}
	if c.ReplayWindow < 0 || c.ReplayWindow > MaxReplayWindow {
		return nil, &ConfigError{Field: "replay_window", Reason: "outside 0.." + strconv.Itoa(MaxReplayWindow)}
	}
	if c.SPI < 256 {
		// SPI 0 is reserved, 1..255 are reserved by IANA (RFC 4303 §2.1).
		return nil, &ConfigError{Field: "spi", Reason: "0..255 are reserved"}
	}
	ks, err := newKeyed(p, dataplane.Keys{Enc: c.Keys.Enc, Integ: c.Keys.Integ})
	if err != nil {
		return nil, err
	}
	s := &SA{
		spi:    c.SPI,
		suite:  c.Suite,
		mode:   c.Mode,
		esn:    c.ESN,
		tfc:    c.TFCPadding && c.Mode == dataplane.Tunnel, // RFC 4303 §2.7: tunnel mode only
		p:      p,
		limits: c.Limits,
	}
	s.replay.init(c.ReplayWindow, c.ESN)
	s.seqMax = 1<<32 - 1
	if c.ESN {
		s.seqMax = 1<<64 - 1
	}
	// Ask for a rekey with 1/8 of the space left (RFC 4303 §3.3.3).
	s.seqSoft = s.seqMax - s.seqMax>>3
	s.ks.Store(ks)
	// Wipe the keys when the SA is dropped without Zero.
	runtime.AddCleanup(s, func(ks *keyed) { ks.wipe() }, ks)
	return s, nil
}

// SPI of the SA.
func (s *SA) SPI() uint32 { return s.spi }

// Overhead returns the bytes Seal adds before the inner packet (SPI, sequence
// number, IV) and the most it adds after it (TFC padding, padding, Pad
// Length, Next Header, ICV).
func (s *SA) Overhead() (head, tail int) {
	head = 8 + s.p.ivLen
	tail = s.p.align - 1 + 2 + s.p.icvLen
	if s.tfc {
		tail += TFCGranule - 1
	}
	return head, tail
}

// NextSeq issues the next outbound sequence number, starting at 1. Past the
// last number it fails: the counter must not cycle (RFC 4303 §3.3.3). When
// 7/8 of the space is used it raises LimitSeq.
func (s *SA) NextSeq() (uint64, error) {
	n := s.seq.Add(1)
	if n > s.seqMax || n == 0 {
		s.seq.Store(s.seqMax) // keep it from cycling through 2^64 retries
		return 0, s.drop(errSeqExhausted)
	}
	if n >= s.seqSoft {
		s.raise(LimitSeq)
	}
	return n, nil
}

// Stats is a snapshot of an SA's counters.
type Stats struct {
	Bytes, Packets uint64 // inner bytes and packets sealed or delivered
	Drops          DropCounts
	Seq            uint64 // last outbound sequence number issued
}

// Stats returns the counters.
func (s *SA) Stats() Stats {
	return Stats{Bytes: s.bytes.Load(), Packets: s.packets.Load(), Drops: s.drops.Snapshot(), Seq: s.seq.Load()}
}

// CountDrop counts a drop the caller decided for this SA, such as
// DropSelectorMismatch.
func (s *SA) CountDrop(r DropReason) { s.drops.Inc(r) }

func (s *SA) drop(e *DropError) *DropError {
	s.drops.Inc(e.Reason)
	return e
}

// Zero wipes the key material this SA owns and makes later Seal and Open
// fail with DropZeroed. Call it once the data plane no longer uses the SA.
func (s *SA) Zero() {
	if ks := s.ks.Swap(nil); ks != nil {
		ks.wipe()
	}
}

func (s *SA) String() string {
	return "esp.SA{spi=0x" + strconv.FormatUint(uint64(s.spi), 16) + " suite=" + s.suite.String() +
		" mode=" + s.mode.String() + " esn=" + strconv.FormatBool(s.esn) + " keys=[redacted]}"
}

// GoString keeps %#v from printing the key material.
func (s *SA) GoString() string { return s.String() }
