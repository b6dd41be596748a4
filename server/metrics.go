package server

// Prometheus metrics. The engine knows nothing of Prometheus: a Collector
// reads engine snapshots at scrape time and turns them into metrics; the API
// latency histogram is fed by an interceptor. Names follow the Prometheus
// conventions: mifsec_ prefix, base units (bytes, seconds), _total for
// counters.

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/iface"
)

// InterfaceLister is the part of the engine the collector always reads.
type InterfaceLister interface {
	ListInterfaces(ctx context.Context, after string, limit int) ([]engine.Interface, bool, error)
}

// RuntimeStatser gives the IKE and data-plane runtime's counters at scrape
// time. The engine's Stats method plugs in through a small adapter.
type RuntimeStatser interface {
	RuntimeStats(ctx context.Context) (RuntimeStats, error)
}

// RuntimeStats is one snapshot of the runtime's counters. Counters are
// cumulative since the daemon started.
type RuntimeStats struct {
	Paths []PathStats
	// ChildSAs are the installed Child SAs, one entry per direction.
	ChildSAs []ChildSAStats
	// IKEExchanges counts exchanges by type (IANA name, e.g.
	// CREATE_CHILD_SA) and result ("success", "timeout", "error").
	IKEExchanges []ExchangeCount
	// Handshake is the duration of IKE SA establishments (IKE_SA_INIT
	// sent or received to IKE_AUTH done).
	Handshake      Histogram
	HalfOpenIKESAs int
	Watchers       int
	EventsDropped  uint64
}

// PathStats are one path's counters (DESIGN.md §2, Path).
type PathStats struct {
	Connection, Path, Interface string
	TxBytes, RxBytes            uint64
	TxPackets, RxPackets        uint64
	RTT                         time.Duration
	// Loss is the fraction of probes lost recently, 0 to 1.
	Loss float64
	Up   bool
}

// ChildSAStats are one Child SA direction's counters.
type ChildSAStats struct {
	Connection, ChildSA string
	// SPI is the SA's SPI in hex, Direction "in" or "out".
	SPI, Direction string
	Bytes, Packets uint64
	// Drops counts dropped packets by reason (e.g. "replay", "icv").
	Drops map[string]uint64
}

// ExchangeCount counts IKE exchanges of one type and result.
type ExchangeCount struct {
	Exchange, Result string
	Count            uint64
}

// Histogram is a cumulative histogram snapshot: Buckets maps each upper
// bound in seconds to the number of observations at or below it.
type Histogram struct {
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64
}

// Collector turns engine snapshots into Prometheus metrics at scrape time.
type Collector struct {
	ifs     InterfaceLister
	rt      RuntimeStatser
	log     hclog.Logger
	timeout time.Duration

	ifRxBytes, ifTxBytes, ifRxPackets, ifTxPackets *prometheus.Desc
	ifUp, ifTransitions, ifAddrChanges             *prometheus.Desc

	pathTxBytes, pathRxBytes, pathTxPackets, pathRxPackets *prometheus.Desc
	pathRTT, pathLoss, pathUp                              *prometheus.Desc

	saBytes, saPackets, saDrops *prometheus.Desc

	ikeExchanges, handshake, halfOpen *prometheus.Desc
	watchers, eventsDropped           *prometheus.Desc
	scrapeErrors                      *prometheus.Desc
}

// NewCollector returns a Collector of ifs and, if rt is not nil, of the
// runtime's counters.
func NewCollector(ifs InterfaceLister, rt RuntimeStatser, log hclog.Logger) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("mifsec_"+name, help, labels, nil)
	}
	ifl := []string{"interface", "link", "access_type"}
	pl := []string{"connection", "path", "interface"}
	sal := []string{"connection", "child_sa", "spi", "direction"}
	return &Collector{
		ifs: ifs, rt: rt, log: log.Named("metrics"), timeout: 5 * time.Second,

		ifRxBytes:     d("interface_receive_bytes_total", "Bytes received on the interface's link (kernel counter).", ifl...),
		ifTxBytes:     d("interface_transmit_bytes_total", "Bytes sent on the interface's link (kernel counter).", ifl...),
		ifRxPackets:   d("interface_receive_packets_total", "Packets received on the interface's link (kernel counter).", ifl...),
		ifTxPackets:   d("interface_transmit_packets_total", "Packets sent on the interface's link (kernel counter).", ifl...),
		ifUp:          d("interface_up", "1 if the interface's link is up, else 0.", ifl...),
		ifTransitions: d("interface_link_transitions_total", "Link state changes seen since the daemon started.", ifl...),
		ifAddrChanges: d("interface_address_changes_total", "Address additions and removals seen since the daemon started.", ifl...),

		pathTxBytes:   d("path_transmit_bytes_total", "ESP bytes sent on the path.", pl...),
		pathRxBytes:   d("path_receive_bytes_total", "ESP bytes received on the path.", pl...),
		pathTxPackets: d("path_transmit_packets_total", "ESP packets sent on the path.", pl...),
		pathRxPackets: d("path_receive_packets_total", "ESP packets received on the path.", pl...),
		pathRTT:       d("path_rtt_seconds", "Last measured round-trip time of the path.", pl...),
		pathLoss:      d("path_loss_ratio", "Fraction of recent liveness probes lost on the path (0 to 1).", pl...),
		pathUp:        d("path_up", "1 if the path is usable, else 0.", pl...),

		saBytes:   d("child_sa_bytes_total", "Bytes protected (out) or accepted (in) by the Child SA.", sal...),
		saPackets: d("child_sa_packets_total", "Packets protected (out) or accepted (in) by the Child SA.", sal...),
		saDrops:   d("child_sa_dropped_packets_total", "Packets the Child SA dropped, by reason.", append(sal, "reason")...),

		ikeExchanges:  d("ike_exchanges_total", "IKE exchanges by exchange type and result.", "exchange", "result"),
		handshake:     d("ike_handshake_duration_seconds", "Time to establish an IKE SA.", nil...),
		halfOpen:      d("ike_half_open_sas", "IKE SAs past IKE_SA_INIT but not yet authenticated (RFC 7296 §2.6).", nil...),
		watchers:      d("api_watchers", "Open Watch streams.", nil...),
		eventsDropped: d("api_events_dropped_total", "Events not delivered because a watcher fell behind and was cut off.", nil...),
		scrapeErrors:  d("scrape_error", "1 if this scrape could not read the source's snapshot, else 0.", "source"),
	}
}

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.ifRxBytes, c.ifTxBytes, c.ifRxPackets, c.ifTxPackets, c.ifUp, c.ifTransitions, c.ifAddrChanges,
		c.pathTxBytes, c.pathRxBytes, c.pathTxPackets, c.pathRxPackets, c.pathRTT, c.pathLoss, c.pathUp,
		c.saBytes, c.saPackets, c.saDrops, c.ikeExchanges, c.handshake, c.halfOpen, c.watchers, c.eventsDropped,
		c.scrapeErrors,
	} {
		ch <- d
	}
}

// Collect reads the snapshots and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	ifErr := c.collectInterfaces(ctx, ch)
	ch <- prometheus.MustNewConstMetric(c.scrapeErrors, prometheus.GaugeValue, b2f(ifErr != nil), "interfaces")
	if c.rt == nil {
		return
	}
	st, err := c.rt.RuntimeStats(ctx)
	if err != nil {
		c.log.Warn("read runtime stats", "error", err)
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeErrors, prometheus.GaugeValue, b2f(err != nil), "runtime")
	if err == nil {
		c.collectRuntime(&st, ch)
	}
}

func (c *Collector) collectInterfaces(ctx context.Context, ch chan<- prometheus.Metric) error {
	after := ""
	for {
		items, more, err := c.ifs.ListInterfaces(ctx, after, 256)
		if err != nil {
			c.log.Warn("list interfaces", "error", err)
			return err
		}
		for i := range items {
			it := &items[i]
			l := []string{it.ID, it.Link, it.AccessType.String()}
			cnt := func(d *prometheus.Desc, v uint64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
			}
			cnt(c.ifRxBytes, it.Counters.RxBytes)
			cnt(c.ifTxBytes, it.Counters.TxBytes)
			cnt(c.ifRxPackets, it.Counters.RxPackets)
			cnt(c.ifTxPackets, it.Counters.TxPackets)
			cnt(c.ifTransitions, it.Counters.LinkTransitions)
			cnt(c.ifAddrChanges, it.Counters.AddressChanges)
			ch <- prometheus.MustNewConstMetric(c.ifUp, prometheus.GaugeValue, b2f(it.State == iface.Up), l...)
		}
		if !more || len(items) == 0 {
			return nil
		}
		after = items[len(items)-1].ID
	}
}

func (c *Collector) collectRuntime(st *RuntimeStats, ch chan<- prometheus.Metric) {
	for _, p := range st.Paths {
		l := []string{p.Connection, p.Path, p.Interface}
		ch <- prometheus.MustNewConstMetric(c.pathTxBytes, prometheus.CounterValue, float64(p.TxBytes), l...)
		ch <- prometheus.MustNewConstMetric(c.pathRxBytes, prometheus.CounterValue, float64(p.RxBytes), l...)
		ch <- prometheus.MustNewConstMetric(c.pathTxPackets, prometheus.CounterValue, float64(p.TxPackets), l...)
		ch <- prometheus.MustNewConstMetric(c.pathRxPackets, prometheus.CounterValue, float64(p.RxPackets), l...)
		ch <- prometheus.MustNewConstMetric(c.pathRTT, prometheus.GaugeValue, p.RTT.Seconds(), l...)
		ch <- prometheus.MustNewConstMetric(c.pathLoss, prometheus.GaugeValue, p.Loss, l...)
		ch <- prometheus.MustNewConstMetric(c.pathUp, prometheus.GaugeValue, b2f(p.Up), l...)
	}
	for _, s := range st.ChildSAs {
		l := []string{s.Connection, s.ChildSA, s.SPI, s.Direction}
		ch <- prometheus.MustNewConstMetric(c.saBytes, prometheus.CounterValue, float64(s.Bytes), l...)
		ch <- prometheus.MustNewConstMetric(c.saPackets, prometheus.CounterValue, float64(s.Packets), l...)
		for reason, n := range s.Drops {
			ch <- prometheus.MustNewConstMetric(c.saDrops, prometheus.CounterValue, float64(n), append(l, reason)...)
		}
	}
	for _, x := range st.IKEExchanges {
		ch <- prometheus.MustNewConstMetric(c.ikeExchanges, prometheus.CounterValue, float64(x.Count), x.Exchange, x.Result)
	}
	if h, err := prometheus.NewConstHistogram(c.handshake, st.Handshake.Count, st.Handshake.Sum, st.Handshake.Buckets); err == nil {
		ch <- h
	} else {
		c.log.Warn("bad handshake histogram", "error", err)
	}
	ch <- prometheus.MustNewConstMetric(c.halfOpen, prometheus.GaugeValue, float64(st.HalfOpenIKESAs))
	ch <- prometheus.MustNewConstMetric(c.watchers, prometheus.GaugeValue, float64(st.Watchers))
	ch <- prometheus.MustNewConstMetric(c.eventsDropped, prometheus.CounterValue, float64(st.EventsDropped))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// APIMetrics times every RPC by method and status code.
type APIMetrics struct {
	latency *prometheus.HistogramVec
	now     func() time.Time
}

// NewAPIMetrics registers mifsec_api_request_duration_seconds with reg.
func NewAPIMetrics(reg prometheus.Registerer) (*APIMetrics, error) {
	m := &APIMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mifsec_api_request_duration_seconds",
			Help: "Time to handle an API call, by method and gRPC status code (streams: until the stream ends).",
			// 100 µs to ~26 s.
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"method", "code"}),
		now: time.Now,
	}
	if err := reg.Register(m.latency); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *APIMetrics) observe(method string, start time.Time, err error) {
	m.latency.WithLabelValues(method, status.Code(err).String()).Observe(m.now().Sub(start).Seconds())
}

// UnaryInterceptor times unary calls. Chain it before the Authorizer's so
// refused calls are counted too.
func (m *APIMetrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := m.now()
		resp, err := handler(ctx, req)
		m.observe(info.FullMethod, start, err)
		return resp, err
	}
}

// StreamInterceptor times streaming calls.
func (m *APIMetrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := m.now()
		err := handler(srv, ss)
		m.observe(info.FullMethod, start, err)
		return err
	}
}
