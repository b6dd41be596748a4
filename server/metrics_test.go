package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/iface"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// fakeIfs pages through a fixed interface list like the engine does.
type fakeIfs struct {
	items []engine.Interface
	err   error
	calls int
}

func (f *fakeIfs) ListInterfaces(_ context.Context, after string, limit int) ([]engine.Interface, bool, error) {
	f.calls++
	if f.err != nil {
		return nil, false, f.err
	}
	var out []engine.Interface
	for _, it := range f.items {
		if it.ID > after {
			out = append(out, it)
		}
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

type fakeRuntime struct {
	st  RuntimeStats
	err error
}

func (f fakeRuntime) RuntimeStats(context.Context) (RuntimeStats, error) { return f.st, f.err }

func TestCollectorInterfaces(t *testing.T) {
	ifs := &fakeIfs{}
	for i, name := range []string{"ran", "wlan"} {
		it := engine.Interface{ID: name, InterfaceSpec: engine.InterfaceSpec{Link: name + "0", AccessType: engine.AccessType(i + 1)}}
		it.Counters.RxBytes, it.Counters.TxBytes = uint64(1000*(i+1)), uint64(2000*(i+1))
		it.Counters.RxPackets, it.Counters.TxPackets = 10, 20
		it.Counters.LinkTransitions = 3
		if i == 0 {
			it.State = iface.Up
		}
		ifs.items = append(ifs.items, it)
	}
	c := NewCollector(ifs, nil, hclog.NewNullLogger())
	want := `
# HELP mifsec_interface_receive_bytes_total Bytes received on the interface's link (kernel counter).
# TYPE mifsec_interface_receive_bytes_total counter
mifsec_interface_receive_bytes_total{access_type="ran",interface="ran",link="ran0"} 1000
mifsec_interface_receive_bytes_total{access_type="wlan",interface="wlan",link="wlan0"} 2000
# HELP mifsec_interface_up 1 if the interface's link is up, else 0.
# TYPE mifsec_interface_up gauge
mifsec_interface_up{access_type="ran",interface="ran",link="ran0"} 1
mifsec_interface_up{access_type="wlan",interface="wlan",link="wlan0"} 0
# HELP mifsec_interface_link_transitions_total Link state changes seen since the daemon started.
# TYPE mifsec_interface_link_transitions_total counter
mifsec_interface_link_transitions_total{access_type="ran",interface="ran",link="ran0"} 3
mifsec_interface_link_transitions_total{access_type="wlan",interface="wlan",link="wlan0"} 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"mifsec_interface_receive_bytes_total", "mifsec_interface_up", "mifsec_interface_link_transitions_total"); err != nil {
		t.Error(err)
	}
	if p := lintProblems(t, c); len(p) > 0 {
		t.Errorf("metric name problems: %v", p)
	}

	// Enough interfaces to need a second page.
	for i := 0; i < 300; i++ {
		ifs.items = append(ifs.items, engine.Interface{ID: fmt.Sprintf("x%03d", i)})
	}
	if n := testutil.CollectAndCount(c, "mifsec_interface_transmit_packets_total"); n != 302 {
		t.Errorf("%d interfaces collected, want 302 (paging)", n)
	}
}

func lintProblems(t *testing.T, c prometheus.Collector) []string {
	t.Helper()
	probs, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range probs {
		out = append(out, p.Metric+": "+p.Text)
	}
	return out
}

func TestCollectorRuntime(t *testing.T) {
	rt := fakeRuntime{st: RuntimeStats{
		Paths: []PathStats{{Connection: "gw", Path: "1", Interface: "ran", TxBytes: 500, RxBytes: 400,
			TxPackets: 5, RxPackets: 4, RTT: 25 * time.Millisecond, Loss: 0.5, Up: true}},
		ChildSAs: []ChildSAStats{{Connection: "gw", ChildSA: "net-1", SPI: "c0ffee01", Direction: "in",
			Bytes: 9000, Packets: 9, Drops: map[string]uint64{"replay": 2, "icv": 1}}},
		IKEExchanges:   []ExchangeCount{{"IKE_SA_INIT", "success", 3}, {"INFORMATIONAL", "timeout", 1}},
		Handshake:      Histogram{Count: 3, Sum: 0.6, Buckets: map[float64]uint64{0.1: 1, 0.5: 3}},
		HalfOpenIKESAs: 2, Watchers: 4, EventsDropped: 7,
	}}
	c := NewCollector(&fakeIfs{}, rt, hclog.NewNullLogger())
	want := `
# HELP mifsec_path_rtt_seconds Last measured round-trip time of the path.
# TYPE mifsec_path_rtt_seconds gauge
mifsec_path_rtt_seconds{connection="gw",interface="ran",path="1"} 0.025
# HELP mifsec_path_loss_ratio Fraction of recent liveness probes lost on the path (0 to 1).
# TYPE mifsec_path_loss_ratio gauge
mifsec_path_loss_ratio{connection="gw",interface="ran",path="1"} 0.5
# HELP mifsec_child_sa_dropped_packets_total Packets the Child SA dropped, by reason.
# TYPE mifsec_child_sa_dropped_packets_total counter
mifsec_child_sa_dropped_packets_total{child_sa="net-1",connection="gw",direction="in",reason="icv",spi="c0ffee01"} 1
mifsec_child_sa_dropped_packets_total{child_sa="net-1",connection="gw",direction="in",reason="replay",spi="c0ffee01"} 2
# HELP mifsec_ike_exchanges_total IKE exchanges by exchange type and result.
# TYPE mifsec_ike_exchanges_total counter
mifsec_ike_exchanges_total{exchange="IKE_SA_INIT",result="success"} 3
mifsec_ike_exchanges_total{exchange="INFORMATIONAL",result="timeout"} 1
# HELP mifsec_ike_handshake_duration_seconds Time to establish an IKE SA.
# TYPE mifsec_ike_handshake_duration_seconds histogram
mifsec_ike_handshake_duration_seconds_bucket{le="0.1"} 1
mifsec_ike_handshake_duration_seconds_bucket{le="0.5"} 3
mifsec_ike_handshake_duration_seconds_bucket{le="+Inf"} 3
mifsec_ike_handshake_duration_seconds_sum 0.6
mifsec_ike_handshake_duration_seconds_count 3
# HELP mifsec_ike_half_open_sas IKE SAs past IKE_SA_INIT but not yet authenticated (RFC 7296 §2.6).
# TYPE mifsec_ike_half_open_sas gauge
mifsec_ike_half_open_sas 2
# HELP mifsec_api_watchers Open Watch streams.
# TYPE mifsec_api_watchers gauge
mifsec_api_watchers 4
# HELP mifsec_api_events_dropped_total Events not delivered because a watcher fell behind and was cut off.
# TYPE mifsec_api_events_dropped_total counter
mifsec_api_events_dropped_total 7
# HELP mifsec_scrape_error 1 if this scrape could not read the source's snapshot, else 0.
# TYPE mifsec_scrape_error gauge
mifsec_scrape_error{source="interfaces"} 0
mifsec_scrape_error{source="runtime"} 0
`
	names := []string{"mifsec_path_rtt_seconds", "mifsec_path_loss_ratio", "mifsec_child_sa_dropped_packets_total",
		"mifsec_ike_exchanges_total", "mifsec_ike_handshake_duration_seconds", "mifsec_ike_half_open_sas",
		"mifsec_api_watchers", "mifsec_api_events_dropped_total", "mifsec_scrape_error"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if p := lintProblems(t, c); len(p) > 0 {
		t.Errorf("metric name problems: %v", p)
	}
}

func TestCollectorSourceErrors(t *testing.T) {
	c := NewCollector(&fakeIfs{err: errors.New("engine closed")}, fakeRuntime{err: errors.New("busy")}, hclog.NewNullLogger())
	want := `
# HELP mifsec_scrape_error 1 if this scrape could not read the source's snapshot, else 0.
# TYPE mifsec_scrape_error gauge
mifsec_scrape_error{source="interfaces"} 1
mifsec_scrape_error{source="runtime"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	// Without a runtime source only the interface metrics are collected.
	only := NewCollector(&fakeIfs{}, nil, hclog.NewNullLogger())
	if n := testutil.CollectAndCount(only, "mifsec_api_watchers", "mifsec_ike_half_open_sas"); n != 0 {
		t.Errorf("runtime metrics without a runtime source: %d", n)
	}
}

func TestAPIMetricsInterceptor(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewAPIMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewAPIMetrics(reg); err == nil {
		t.Error("registering twice: no error")
	}
	// 2 ms per call, whatever the machine's speed.
	var tick time.Time
	m.now = func() time.Time { tick = tick.Add(time.Millisecond); return tick }

	f := newFixture(t, 0)
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(m.UnaryInterceptor()), grpc.ChainStreamInterceptor(m.StreamInterceptor()))
	New(f.eng, hclog.NewNullLogger()).Register(g)
	go g.Serve(lis)
	defer g.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ifs := mifsecv1.NewInterfaceServiceClient(conn)
	c := ctx(t)
	ifs.ListInterfaces(c, &mifsecv1.ListInterfacesRequest{})
	ifs.ListInterfaces(c, &mifsecv1.ListInterfacesRequest{})
	ifs.GetInterface(c, &mifsecv1.GetInterfaceRequest{Name: "interfaces/absent"})
	wctx, cancel := context.WithCancel(c)
	st, err := mifsecv1.NewEventServiceClient(conn).Watch(wctx, &mifsecv1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st.Recv()
	cancel()
	const list = `method="/mifsec.v1.InterfaceService/ListInterfaces"`
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := testutil.GatherAndCount(reg, "mifsec_api_request_duration_seconds")
		if err != nil {
			t.Fatal(err)
		}
		if got == 3 || time.Now().After(deadline) {
			if got != 3 {
				t.Fatalf("%d series, want 3 (List OK, Get NotFound, Watch OK once the client leaves)", got)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]uint64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, lp := range mt.GetLabel() {
				labels = append(labels, lp.GetName()+`="`+lp.GetValue()+`"`)
			}
			key := strings.Join(labels, ",")
			found[key] = mt.GetHistogram().GetSampleCount()
			if strings.Contains(key, list) && mt.GetHistogram().GetSampleSum() != 0.002 {
				t.Errorf("%s: sum %v, want 0.002 (two 1 ms calls)", key, mt.GetHistogram().GetSampleSum())
			}
		}
	}
	for key, n := range map[string]uint64{
		`code="OK",` + list: 2,
		`code="NotFound",method="/mifsec.v1.InterfaceService/GetInterface"`: 1,
		`code="OK",method="/mifsec.v1.EventService/Watch"`:                  1,
	} {
		if found[key] != n {
			t.Errorf("%s: %d samples, want %d (have %v)", key, found[key], n, found)
		}
	}
}
