package server

import (
	"context"
	"fmt"

	"github.com/mifsec/mifsec/engine"
)

// EngineStats feeds the Prometheus collector from the engine: runtime
// counters, half-open IKE SAs, watchers, and the Child SAs' data-plane
// counters.
type EngineStats struct{ E *engine.Engine }

// RuntimeStats implements RuntimeStatser.
func (s EngineStats) RuntimeStats(ctx context.Context) (RuntimeStats, error) {
	st, err := s.E.Stats(ctx)
	if err != nil {
		return RuntimeStats{}, err
	}
	out := RuntimeStats{HalfOpenIKESAs: st.HalfOpenIKESAs, Watchers: st.Watchers, EventsDropped: st.EventsDropped}
	for k, n := range st.Exchanges {
		out.IKEExchanges = append(out.IKEExchanges, ExchangeCount{Exchange: k.Exchange, Result: k.Result, Count: n})
	}
	h := st.Handshake
	out.Handshake = Histogram{Count: h.Count, Sum: h.Sum.Seconds(), Buckets: map[float64]uint64{}}
	for i, b := range engine.HandshakeBuckets {
		if i < len(h.Buckets) {
			out.Handshake.Buckets[b.Seconds()] = h.Buckets[i]
		} else {
			out.Handshake.Buckets[b.Seconds()] = 0
		}
	}
	if err := s.paths(ctx, &out); err != nil {
		return out, err
	}
	after := ""
	for {
		kids, more, err := s.E.ListChildSAs(ctx, "-", "-", after, 1000)
		if err != nil {
			return out, err
		}
		for _, c := range kids {
			out.ChildSAs = append(out.ChildSAs,
				ChildSAStats{Connection: c.Conn, ChildSA: c.Child, SPI: fmt.Sprintf("%08x", c.SPIIn), Direction: "in",
					Bytes: c.In.Bytes, Packets: c.In.Packets, Drops: c.In.Drops},
				ChildSAStats{Connection: c.Conn, ChildSA: c.Child, SPI: fmt.Sprintf("%08x", c.SPIOut), Direction: "out",
					Bytes: c.Out.Bytes, Packets: c.Out.Packets, Drops: c.Out.Drops})
			after = c.Conn + "/" + c.IKE + "/" + c.Name
		}
		if !more || len(kids) == 0 {
			return out, nil
		}
	}
}

// paths adds every connection's paths with their counters, RTT and loss.
func (s EngineStats) paths(ctx context.Context, out *RuntimeStats) error {
	after := ""
	for {
		ps, more, err := s.E.ListPaths(ctx, "-", after, 1000)
		if err != nil {
			return err
		}
		for _, p := range ps {
			out.Paths = append(out.Paths, PathStats{Connection: p.Conn, Path: p.ID, Interface: p.Interface,
				TxBytes: p.Out.Bytes, RxBytes: p.In.Bytes, TxPackets: p.Out.Packets, RxPackets: p.In.Packets,
				RTT: p.RTT, Loss: p.Loss, Up: p.State == engine.PathUp})
			after = p.Conn + "/" + p.ID
		}
		if !more || len(ps) == 0 {
			return nil
		}
	}
}
