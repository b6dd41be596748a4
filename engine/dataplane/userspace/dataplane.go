package userspace

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/esp"
)

// IKEHandler receives IKE messages that arrived on a data-plane socket
// (after the non-ESP marker). msg belongs to the handler. It runs on the
// socket's reader goroutine and must not block.
type IKEHandler func(local, remote netip.AddrPort, msg []byte)

// ErrClosed is returned by operations on a closed DataPlane.
var ErrClosed = errors.New("userspace: data plane closed")

// ErrNoSocket: no socket is open on the given local address.
var ErrNoSocket = errors.New("userspace: no socket on that local address")

// DataPlane is the userspace data plane; it implements dataplane.DataPlane.
type DataPlane struct {
	log    hclog.Logger
	cfg    Config
	ns     *nsHandle
	tun    tunDevice
	listen func(netip.AddrPort) (udpConn, error)
	rawESP func(v6 bool) (espConn, error)

	mu     sync.Mutex // serialises control operations
	tab    atomic.Pointer[tables]
	socks  map[netip.AddrPort]*sock
	raw    [2]*sock // plain ESP sockets, IPv4 and IPv6, opened on demand
	closed bool

	// drain is read-locked by every batch between its table lookup and its
	// completion; DeleteSA takes it to know no batch still uses an SA
	// before zeroing its keys.
	drain sync.RWMutex

	steer  atomic.Pointer[steeringBox]
	ike    atomic.Pointer[IKEHandler]
	events chan dataplane.Event

	espDrops  esp.Drops // ESP drops without an SA (unknown_spi)
	dd        dataDrops
	evDropped atomic.Uint64

	pipe pipeline
}

type steeringBox struct{ s dataplane.Steering }

// sock is one UDP socket, or the raw plain-ESP socket of a family, and the
// lock that serialises its senders.
type sock struct {
	conn   udpConn // nil for plain ESP
	raw    espConn // nil for UDP
	local  netip.AddrPort
	sendMu sync.Mutex
}

func (s *sock) readBatch(msgs []rxMsg) (int, error) {
	if s.raw != nil {
		return s.raw.ReadBatch(msgs)
	}
	return s.conn.ReadBatch(msgs)
}

// send sends the sealed packets of an outbound SA to its peer.
func (s *sock) send(ep *endpoint, pkts [][]byte) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.raw != nil {
		return s.raw.Send(ep.local.Addr(), ep.remote.Addr(), pkts)
	}
	return s.conn.Send(ep.remote, pkts)
}

func (s *sock) close() error {
	if s.raw != nil {
		return s.raw.Close()
	}
	return s.conn.Close()
}

var _ dataplane.DataPlane = (*DataPlane)(nil)

// New creates the TUN link and the sockets of cfg.Listen, configures them
// and starts the pipeline. log may be nil.
func New(cfg Config, log hclog.Logger) (*DataPlane, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ns, err := openNS(c.NetNS)
	if err != nil {
		return nil, err
	}
	var tun *linuxTUN
	err = ns.do(func() error {
		var err error
		tun, err = openTUN(tunConfig{Name: c.TUN, MTU: c.MTU, Addrs: c.Addresses, Routes: c.Routes, Offload: !c.DisableOffload})
		return err
	})
	if err != nil {
		ns.close()
		return nil, err
	}
	listen := func(a netip.AddrPort) (udpConn, error) {
		var u *linuxUDP
		err := ns.do(func() error {
			var err error
			u, err = listenUDP(a, !c.DisableOffload)
			return err
		})
		if err != nil {
			return nil, err
		}
		return u, nil
	}
	rawESP := func(v6 bool) (espConn, error) {
		var r *linuxESP
		err := ns.do(func() error {
			var err error
			r, err = listenESP(v6)
			return err
		})
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	d, err := newDataPlane(c, log, tun, listen, rawESP)
	if err != nil {
		tun.Close()
		ns.close()
		return nil, err
	}
	d.ns = ns
	if log != nil {
		d.log.Info("data plane up", "tun", tun.Name(), "mtu", c.MTU, "vnet_hdr", tun.vnet, "workers", c.Workers)
	}
	return d, nil
}

// TUNName returns the name the kernel gave the TUN link.
func (d *DataPlane) TUNName() string {
	if t, ok := d.tun.(*linuxTUN); ok {
		return t.Name()
	}
	return ""
}

// newDataPlane assembles a data plane from its edges (tests use in-memory
// ones) and starts it. cfg has its defaults filled in.
func newDataPlane(cfg Config, log hclog.Logger, tun tunDevice, listen func(netip.AddrPort) (udpConn, error), rawESP func(v6 bool) (espConn, error)) (*DataPlane, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	d := &DataPlane{
		log:    log.Named("userspace"),
		cfg:    cfg,
		tun:    tun,
		listen: listen,
		rawESP: rawESP,
		socks:  make(map[netip.AddrPort]*sock),
		events: make(chan dataplane.Event, cfg.EventBuffer),
	}
	d.tab.Store(newTables())
	d.pipe.init(d)
	for _, a := range cfg.Listen {
		if _, err := d.sockFor(cfg.withPort(a)); err != nil {
			d.Close()
			return nil, err
		}
	}
	d.pipe.start()
	return d, nil
}

// Name implements dataplane.DataPlane.
func (d *DataPlane) Name() string { return "userspace" }

// Listen opens a socket on local (port 0 means Config.Port), for IKE before
// any SA exists. Opening an address twice is not an error.
func (d *DataPlane) Listen(local netip.AddrPort) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	_, err := d.sockFor(d.cfg.withPort(local))
	return err
}

// sockFor returns the socket on local, opening it if needed. d.mu held (or
// the pipeline not started yet).
func (d *DataPlane) sockFor(local netip.AddrPort) (*sock, error) {
	if s := d.socks[local]; s != nil {
		return s, nil
	}
	c, err := d.listen(local)
	if err != nil {
		return nil, err
	}
	s := &sock{conn: c, local: local}
	d.socks[local] = s
	d.pipe.addReader(s)
	d.log.Debug("socket open", "local", local)
	return s, nil
}

// rawFor returns the plain-ESP socket of a's family, opening it if needed.
// d.mu held.
func (d *DataPlane) rawFor(a netip.Addr) (*sock, error) {
	i, unspec, family := 0, netip.IPv4Unspecified(), "ipv4"
	if a.Unmap().Is6() {
		i, unspec, family = 1, netip.IPv6Unspecified(), "ipv6"
	}
	if s := d.raw[i]; s != nil {
		return s, nil
	}
	c, err := d.rawESP(i == 1)
	if err != nil {
		return nil, err
	}
	s := &sock{raw: c, local: netip.AddrPortFrom(unspec, 0)}
	d.raw[i] = s
	d.pipe.addReader(s)
	d.log.Debug("plain esp socket open", "family", family)
	return s, nil
}

// endpointFor opens (or finds) the socket an SA on local/remote uses: the
// UDP socket on local with encapsulation, else the raw socket of the
// family. d.mu held.
func (d *DataPlane) endpointFor(local, remote netip.AddrPort, encap bool) (*endpoint, error) {
	if !encap {
		s, err := d.rawFor(local.Addr())
		if err != nil {
			return nil, err
		}
		return &endpoint{local: netip.AddrPortFrom(local.Addr().Unmap(), 0), remote: netip.AddrPortFrom(remote.Addr().Unmap(), 0), sock: s}, nil
	}
	local, remote = d.cfg.withPort(local), d.cfg.withPort(remote)
	s, err := d.sockFor(local)
	if err != nil {
		return nil, err
	}
	return &endpoint{local: local, remote: remote, sock: s}, nil
}

// SetIKEHandler sets the receiver of IKE messages; nil drops them.
func (d *DataPlane) SetIKEHandler(h IKEHandler) {
	if h == nil {
		d.ike.Store(nil)
		return
	}
	d.ike.Store(&h)
}

// SendIKE sends msg from local to remote with the non-ESP marker in front
// (RFC 3948 §2.2). The socket on local must be open (Listen, Config.Listen
// or an SA).
func (d *DataPlane) SendIKE(local, remote netip.AddrPort, msg []byte) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	s := d.socks[d.cfg.withPort(local)]
	d.mu.Unlock()
	if s == nil {
		return fmt.Errorf("%w: %s", ErrNoSocket, local)
	}
	b := esp.AppendIKE(make([]byte, 0, esp.NonESPMarkerLen+len(msg)), msg)
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.conn.Send(remote, [][]byte{b})
}

// SetSteering implements dataplane.DataPlane; nil restores the default
// (first SA of the policy).
func (d *DataPlane) SetSteering(s dataplane.Steering) {
	if s == nil {
		d.steer.Store(nil)
		return
	}
	d.steer.Store(&steeringBox{s})
}

// Events implements dataplane.DataPlane.
func (d *DataPlane) Events() <-chan dataplane.Event { return d.events }

func (d *DataPlane) emit(kind dataplane.EventKind, spi uint32, dir dataplane.Direction, f dataplane.Flow) {
	select {
	case d.events <- dataplane.Event{Kind: kind, SPI: spi, Direction: dir, Flow: f, Time: time.Now()}:
	default:
		d.evDropped.Add(1)
	}
}

// raiseLimits turns the lifetime events esp recorded into data-plane events.
func (d *DataPlane) raiseLimits(e *saEntry) {
	ev := e.esp.TakeEvents()
	if ev == 0 {
		return
	}
	for k := range ev.Kinds() {
		d.emit(k, e.cfg.SPI, e.cfg.Direction, dataplane.Flow{})
	}
	if ev.Has(esp.LimitHard) {
		d.log.Info("sa hard expired", "spi", fmt.Sprintf("0x%08x", e.cfg.SPI), "dir", e.cfg.Direction.String())
		d.pipe.expire(e)
	}
}

func ctxErr(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}

// AddSA implements dataplane.DataPlane. The keys are copied into the ESP
// state; the caller keeps (and should zero) its copy.
func (d *DataPlane) AddSA(ctx context.Context, sa dataplane.SA) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if err := checkSA(&sa); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	t := d.tab.Load()
	if t.sa(sa.Direction, sa.SPI) != nil {
		return fmt.Errorf("%w: spi 0x%08x %s", dataplane.ErrExists, sa.SPI, sa.Direction)
	}
	window := 0
	if sa.Direction == dataplane.In {
		window = sa.ReplayWindow
	}
	es, err := esp.NewSA(esp.Config{
		SPI: sa.SPI, Suite: sa.Suite, Keys: sa.Keys, ESN: sa.ESN, Mode: sa.Mode,
		ReplayWindow: window, TFCPadding: sa.TFCPadding && sa.Direction == dataplane.Out, Limits: sa.Limits,
	})
	if err != nil {
		return fmt.Errorf("userspace: spi 0x%08x: %w", sa.SPI, err)
	}
	ep, err := d.endpointFor(sa.Local, sa.Remote, sa.Encap)
	if err != nil {
		es.Zero()
		return err
	}
	e := &saEntry{cfg: sa, esp: es}
	e.ordCond.L = &e.ordMu
	e.cfg.Keys = dataplane.Keys{}
	e.cfg.Local, e.cfg.Remote = ep.local, ep.remote
	e.cfg.LocalTS, e.cfg.RemoteTS = slices.Clone(sa.LocalTS), slices.Clone(sa.RemoteTS)
	if sa.Mode == dataplane.Transport && sa.Direction == dataplane.In {
		e.rb = newRebuild(&e.cfg)
	}
	e.ep.Store(ep)
	d.tab.Store(t.withSA(sa.Direction, sa.SPI, e))
	d.log.Debug("sa added", "spi", fmt.Sprintf("0x%08x", sa.SPI), "dir", sa.Direction.String(), "mode", sa.Mode.String(),
		"suite", sa.Suite.String(), "encap", sa.Encap, "local", ep.local, "remote", ep.remote)
	return nil
}

// checkSA validates what this data plane can carry.
func checkSA(sa *dataplane.SA) error {
	if sa.Direction != dataplane.In && sa.Direction != dataplane.Out {
		return &ConfigError{Field: "direction", Reason: "neither in nor out"}
	}
	if sa.Mode != dataplane.Tunnel && sa.Mode != dataplane.Transport {
		return &ConfigError{Field: "mode", Reason: "neither tunnel nor transport"}
	}
	if err := checkOuter(sa.Local, sa.Remote); err != nil {
		return err
	}
	if sa.Direction == dataplane.In && (len(sa.LocalTS) == 0 || len(sa.RemoteTS) == 0) {
		return &ConfigError{Field: "local_ts/remote_ts", Reason: "an inbound SA needs selectors to check inner packets against (RFC 4301 §5.2)"}
	}
	return nil
}

// checkOuter validates the outer addresses of an SA: both present, one family.
func checkOuter(local, remote netip.AddrPort) error {
	l, r := local.Addr().Unmap(), remote.Addr().Unmap()
	if !l.IsValid() || !r.IsValid() {
		return &ConfigError{Field: "local/remote", Reason: "outer addresses required"}
	}
	if l.Is4() != r.Is4() {
		return &ConfigError{Field: "local/remote", Reason: "outer addresses of different families"}
	}
	return nil
}

// UpdateSA implements dataplane.DataPlane: it moves the SA to new outer
// addresses (RFC 4555 §3.5), and between ESP-in-UDP and plain ESP as
// u.Encap says. Batches already queued leave from the old address; the old
// socket stays open, so none is lost. Inbound SAs are found by SPI on any
// socket, but moving one to plain ESP opens the raw socket that receives it:
// move the inbound SA before the peer moves its outbound one.
func (d *DataPlane) UpdateSA(ctx context.Context, spi uint32, dir dataplane.Direction, u dataplane.AddrUpdate) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if err := checkOuter(u.Local, u.Remote); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	e := d.tab.Load().sa(dir, spi)
	if e == nil {
		return fmt.Errorf("%w: spi 0x%08x %s", dataplane.ErrNotFound, spi, dir)
	}
	ep, err := d.endpointFor(u.Local, u.Remote, u.Encap)
	if err != nil {
		return err
	}
	e.ep.Store(ep)
	d.log.Debug("sa moved", "spi", fmt.Sprintf("0x%08x", spi), "dir", dir.String(), "encap", u.Encap, "local", ep.local, "remote", ep.remote)
	return nil
}

// DeleteSA implements dataplane.DataPlane. It returns once no batch uses the
// SA any more, and zeroes its keys.
func (d *DataPlane) DeleteSA(ctx context.Context, spi uint32, dir dataplane.Direction) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if !d.removeLocked(spi, dir) {
		return fmt.Errorf("%w: spi 0x%08x %s", dataplane.ErrNotFound, spi, dir)
	}
	return nil
}

// removeLocked unpublishes an SA, waits for the batches in flight and zeroes
// it. d.mu held.
func (d *DataPlane) removeLocked(spi uint32, dir dataplane.Direction) bool {
	t := d.tab.Load()
	e := t.sa(dir, spi)
	if e == nil {
		return false
	}
	d.tab.Store(t.withSA(dir, spi, nil))
	d.drain.Lock() // every batch that could hold e has finished
	d.drain.Unlock()
	e.esp.Zero()
	d.log.Debug("sa deleted", "spi", fmt.Sprintf("0x%08x", spi), "dir", dir.String())
	return true
}

// AddPolicy implements dataplane.DataPlane.
func (d *DataPlane) AddPolicy(ctx context.Context, p dataplane.Policy) error {
	return d.putPolicy(ctx, p, false)
}

// UpdatePolicy implements dataplane.DataPlane.
func (d *DataPlane) UpdatePolicy(ctx context.Context, p dataplane.Policy) error {
	return d.putPolicy(ctx, p, true)
}

func (d *DataPlane) putPolicy(ctx context.Context, p dataplane.Policy, update bool) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if p.Direction != dataplane.In && p.Direction != dataplane.Out {
		return &ConfigError{Field: "policy.direction", Reason: "neither in nor out"}
	}
	if p.Action < dataplane.Protect || p.Action > dataplane.Discard {
		return &ConfigError{Field: "policy.action", Reason: "unknown action"}
	}
	if len(p.Local) == 0 || len(p.Remote) == 0 {
		return &ConfigError{Field: "policy.local/remote", Reason: "selectors required"}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	t := d.tab.Load()
	old, exists := t.pols.get(p.ID)
	switch {
	case update && !exists:
		return fmt.Errorf("%w: policy %d", dataplane.ErrNotFound, p.ID)
	case !update && exists:
		return fmt.Errorf("%w: policy %d", dataplane.ErrExists, p.ID)
	}
	p.Local, p.Remote, p.SPIs = slices.Clone(p.Local), slices.Clone(p.Remote), slices.Clone(p.SPIs)
	d.tab.Store(t.withPolicy(old, &polEntry{p: p}))
	return nil
}

// DeletePolicy implements dataplane.DataPlane.
func (d *DataPlane) DeletePolicy(ctx context.Context, id uint64) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	t := d.tab.Load()
	old, ok := t.pols.get(id)
	if !ok {
		return fmt.Errorf("%w: policy %d", dataplane.ErrNotFound, id)
	}
	d.tab.Store(t.withPolicy(old, nil))
	return nil
}

// Counters implements dataplane.DataPlane. Bytes and packets count inner
// packets (transport mode: the payload after the IP header) sealed, or
// opened and delivered; a packet dropped after opening (selector mismatch)
// counts as a drop only. Drops merges the ESP reasons with the data plane's
// own.
func (d *DataPlane) Counters(ctx context.Context, spi uint32, dir dataplane.Direction) (dataplane.Counters, error) {
	if err := ctxErr(ctx); err != nil {
		return dataplane.Counters{}, err
	}
	e := d.tab.Load().sa(dir, spi)
	if e == nil {
		return dataplane.Counters{}, fmt.Errorf("%w: spi 0x%08x %s", dataplane.ErrNotFound, spi, dir)
	}
	// Rejects first: a reject is counted after the open it takes back, so
	// every reject seen here is already in the totals read next.
	rp, rb := e.rejPackets.Load(), e.rejBytes.Load()
	st := e.esp.Stats()
	c := dataplane.Counters{Bytes: st.Bytes - min(rb, st.Bytes), Packets: st.Packets - min(rp, st.Packets), Drops: st.Drops.Map()}
	if c.Drops == nil {
		c.Drops = map[string]uint64{}
	}
	e.dd.addTo(c.Drops)
	if ns := e.last.Load(); ns != 0 {
		c.LastUsed = time.Unix(0, ns)
	}
	return c, nil
}

// Stats are the counters of the data plane as a whole.
type Stats struct {
	// Drops with no SA to count them on, by reason (unknown_spi, no_policy, ...).
	Drops map[string]uint64
	// EventsDropped counts events that found Events() full.
	EventsDropped uint64
	// TUN coalescing and write counters (inbound), for tuning.
	TUNWrites, TUNCoalesced uint64
}

// Stats returns the data-plane-wide counters.
func (d *DataPlane) Stats() Stats {
	m := d.espDrops.Snapshot().Map()
	if m == nil {
		m = map[string]uint64{}
	}
	d.dd.addTo(m)
	ts := d.tun.Stats()
	if ts.ReadDrops != 0 {
		m[DropMalformed.String()] += ts.ReadDrops
	}
	if ts.WriteDrops != 0 {
		m[DropTUNWrite.String()] += ts.WriteDrops
	}
	return Stats{Drops: m, EventsDropped: d.evDropped.Load(), TUNWrites: ts.Writes, TUNCoalesced: ts.Coalesced}
}

// Close implements dataplane.DataPlane: it stops the pipeline, closes the
// TUN and the sockets, zeroes every SA and closes Events().
func (d *DataPlane) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	socks := make([]*sock, 0, len(d.socks)+2)
	for _, s := range d.socks {
		socks = append(socks, s)
	}
	for _, s := range d.raw {
		if s != nil {
			socks = append(socks, s)
		}
	}
	d.mu.Unlock()

	d.pipe.stopping()
	err := d.tun.Close()
	for _, s := range socks {
		if e := s.close(); e != nil && err == nil {
			err = e
		}
	}
	d.pipe.stop()
	t := d.tab.Load()
	for _, m := range []*cowMap[uint32, *saEntry]{&t.in, &t.out} {
		for _, e := range m.all {
			e.esp.Zero()
		}
	}
	d.tab.Store(newTables())
	close(d.events)
	if d.ns != nil {
		d.ns.close()
	}
	return err
}
