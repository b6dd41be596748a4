package engine

import (
	"fmt"
	"io"
	"log"
	"net/netip"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/vishvananda/netlink"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/sa"
	"github.com/mifsec/mifsec/engine/transform"
)

// startAddrs are our additional addresses an IKE SA of c starting from
// local announces in IKE_AUTH (RFC 4555 §3.4, mobility.go), nil without
// MOBIKE.
func (st *state) startAddrs(c *connection, local netip.Addr) []netip.Addr {
	if !c.MOBIKE {
		return nil
	}
	return st.announceable(c, local)
}

// prepare makes c's sa.Config template when c is loaded or changed, so
// that starting an IKE SA builds nothing (an error shows when one starts).
func (st *state) prepare(c *connection) {
	if st.rt.tr != nil {
		st.saTemplate(c)
	}
}

// saTemplate is connection c's sa.Config without addresses, kept on c
// until the configuration changes (a connection update makes a new c;
// pools and secrets bump cfgGen). All IKE SAs of c share it (a gateway's
// responders, an end user's paths and reauthentications): sa treats a
// Config as read-only and takes what differs per IKE SA through
// NewInitiatorAt and Place.
func (st *state) saTemplate(c *connection) (*sa.Config, error) {
	if c.tpl != nil && c.tplGen == st.cfgGen {
		return c.tpl, nil
	}
	cfg, err := st.buildSAConfig(c)
	if err != nil {
		return nil, err
	}
	c.tpl, c.tplGen = cfg, st.cfgGen
	return cfg, nil
}

// buildSAConfig makes connection c's sa.Config without addresses.
func (st *state) buildSAConfig(c *connection) (*sa.Config, error) {
	if c.log == nil {
		c.log = &connLogger{Logger: st.ikeLog(), conn: c.ID} // one per connection, not per IKE SA
	}
	cfg := &sa.Config{
		Name:            c.ID,
		IKEProposals:    c.ike,
		SPIs:            st.rt,
		Rand:            st.rt.rng, // the machines' own source, not one per IKE SA
		DPD:             c.DPDInterval,
		DPDTimeout:      c.DPDTimeout,
		Retransmit:      st.e.cfg.Retransmit,
		FragmentMTU:     st.e.cfg.FragmentMTU,
		MOBIKE:          c.MOBIKE,
		Clone:           true, // RFC 7791: a mifsec peer adds paths without re-authenticating (multipath.go)
		Logger:          c.log,
		DH:              st.rt.dhSource(),
		VirtualIP:       sa.VirtualIP{IPv4: c.VirtualIP4, IPv6: c.VirtualIP6, DNS: c.VirtualIP4 || c.VirtualIP6},
		Lifetimes:       sa.Lifetimes{IKERekey: c.IKERekeyTime, ChildRekey: DefaultChildRekey, Jitter: c.IKERekeyTime / 10},
		NoFragmentation: !c.Fragmentation,
	}
	var err error
	if c.LocalID != "" {
		if cfg.LocalID, err = sa.ParseIdentity(c.LocalID); err != nil {
			return nil, err
		}
	}
	if c.RemoteID != "" {
		if cfg.RemoteID, err = sa.ParseIdentity(c.RemoteID); err != nil {
			return nil, err
		}
	}
	if err := st.authConfig(c, cfg); err != nil {
		return nil, err
	}
	if c.Pool != "" {
		p := st.pools[c.Pool]
		cfg.Pool = poolAdapter{p: p, st: st}
		cfg.DNS, cfg.PCSCF = p.PoolSpec.DNS, p.PoolSpec.PCSCF
	}
	cfg.Children = make([]sa.ChildConfig, 0, len(c.Children))
	for i, ch := range c.Children {
		cc := sa.ChildConfig{Name: ch.Name, Proposals: c.esp[i], Mode: ch.Mode, RekeyTime: ch.RekeyTime,
			Limits: dataplane.Limits{SoftBytes: ch.RekeyBytes, SoftPackets: ch.RekeyPackets}}
		if cc.Mode == 0 {
			cc.Mode = dataplane.Tunnel // what sa defaults to, set here so no machine writes the shared slice
		}
		if ch.RekeyBytes > 0 {
			cc.Limits.HardBytes = ch.RekeyBytes + ch.RekeyBytes/10
		}
		if ch.RekeyPackets > 0 {
			cc.Limits.HardPackets = ch.RekeyPackets + ch.RekeyPackets/10
		}
		for _, s := range c.ts[i].local {
			cc.LocalTS = append(cc.LocalTS, selectorToTS(s))
		}
		for _, s := range c.ts[i].remote {
			cc.RemoteTS = append(cc.RemoteTS, selectorToTS(s))
		}
		cfg.Children = append(cfg.Children, cc)
	}
	return cfg, nil
}

// ikeLog is the engine's "ike" logger, named once.
func (st *state) ikeLog() hclog.Logger {
	if st.rt.ikeLog == nil {
		st.rt.ikeLog = st.e.log.Named("ike")
	}
	return st.rt.ikeLog
}

// connLogger is a connection's IKE logger ("connection" field), made on
// the first line logged: machines log rarely, and hclog's With copies the
// logger (about 250 bytes) for each of an end user's connections. Level
// queries go to the shared logger, which has the same level.
type connLogger struct {
	hclog.Logger // the engine's "ike" logger
	conn         string
	with         hclog.Logger
}

func (l *connLogger) made() hclog.Logger {
	if l.with == nil {
		l.with = l.Logger.With("connection", l.conn)
	}
	return l.with
}

func (l *connLogger) Log(level hclog.Level, msg string, args ...any) {
	if level >= l.Logger.GetLevel() {
		l.made().Log(level, msg, args...)
	}
}

func (l *connLogger) Trace(msg string, args ...any) {
	if l.Logger.IsTrace() {
		l.made().Trace(msg, args...)
	}
}

func (l *connLogger) Debug(msg string, args ...any) {
	if l.Logger.IsDebug() {
		l.made().Debug(msg, args...)
	}
}

func (l *connLogger) Info(msg string, args ...any) {
	if l.Logger.IsInfo() {
		l.made().Info(msg, args...)
	}
}

func (l *connLogger) Warn(msg string, args ...any) {
	if l.Logger.IsWarn() {
		l.made().Warn(msg, args...)
	}
}

func (l *connLogger) Error(msg string, args ...any) {
	if l.Logger.IsError() {
		l.made().Error(msg, args...)
	}
}

func (l *connLogger) ImpliedArgs() []any                  { return l.made().ImpliedArgs() }
func (l *connLogger) With(args ...any) hclog.Logger       { return l.made().With(args...) }
func (l *connLogger) Named(name string) hclog.Logger      { return l.made().Named(name) }
func (l *connLogger) ResetNamed(name string) hclog.Logger { return l.made().ResetNamed(name) }
func (l *connLogger) StandardLogger(o *hclog.StandardLoggerOptions) *log.Logger {
	return l.made().StandardLogger(o)
}
func (l *connLogger) StandardWriter(o *hclog.StandardLoggerOptions) io.Writer {
	return l.made().StandardWriter(o)
}

// configChanged makes every connection's sa.Config template stale: a
// pool or secret a connection refers to may have changed.
func (st *state) configChanged() { st.cfgGen++ }

func selectorToTS(s dataplane.Selector) ike.TrafficSelector {
	last := s.Prefix.Addr()
	b := last.AsSlice()
	for i := s.Prefix.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	last, _ = netip.AddrFromSlice(b)
	return ike.TrafficSelector{IPProtocol: s.Protocol, StartPort: s.PortFrom, EndPort: s.PortTo, Start: s.Prefix.Addr(), End: last}
}

func (st *state) authConfig(c *connection, cfg *sa.Config) error {
	la, ra := c.LocalAuth, c.RemoteAuth
	if la.PSKSecret != "" {
		cfg.Auth.PSK = st.secrets[la.PSKSecret].pskSecret() // shared, not copied per template
	}
	if ra.PSKSecret != "" && ra.PSKSecret != la.PSKSecret {
		// The peer proves knowledge of its own key.
		psk := st.secrets[ra.PSKSecret].pskSecret()
		cfg.Policy = func(id sa.Identity) (*sa.PeerAuth, error) { return &sa.PeerAuth{PSK: psk}, nil }
	}
	if la.CertPEM != "" {
		certs, err := parseCertChain(la.CertPEM)
		if err != nil {
			return err
		}
		cfg.Auth.Certs, cfg.Auth.Key = certs, st.secrets[la.KeySecret].signer
	}
	if ra.CAPEM != "" {
		ts, err := transform.ParseTrustStorePEM([]byte(ra.CAPEM))
		if err != nil {
			return err
		}
		cfg.Auth.Trust = ts
	}
	return nil
}

// poolAdapter lends an engine pool to IKE machines (sa.AddressPool).
type poolAdapter struct {
	p  *pool
	st *state
}

func (a poolAdapter) Lease(peerID string, v6 bool) (netip.Addr, error) {
	addr, err := a.p.lease(peerID, v6, a.st.e.cfg.Now())
	if err == nil {
		a.st.leaseChanged()
	}
	return addr, err
}

func (a poolAdapter) Release(peerID string, addr netip.Addr) { a.p.release(peerID, addr) }

// leaseFlushInterval bounds how long a new lease may live only in memory.
// Writing the state file (with fsync) on every lease cost more than the
// whole IKE exchange; a lease lost to a crash only means the identity may
// get another address next time (RFC 7296 §2.19 makes no promise).
const leaseFlushInterval = time.Second

// leaseChanged marks the leases dirty; the state goroutine writes them
// within leaseFlushInterval (flushLeases), and on shutdown. Any other
// persist on the way writes them as well.
func (st *state) leaseChanged() {
	if st.leasesDirty {
		return
	}
	st.leasesDirty = true
	st.leaseTimer.Reset(leaseFlushInterval)
}

// flushLeases hands the leases, if marked dirty by leaseChanged, to the
// writer of leases.json (leasefile.go): copied here, encoded and synced
// on its goroutine.
func (st *state) flushLeases() {
	if st.leasesDirty {
		st.leasesDirty = false
		st.leaseW.submit(st.leaseSnapshot())
	}
}

// routeSrcTTL bounds how long the kernel's answer to a route lookup is
// reused. Link and address notifications clear the cache; route changes
// alone are not followed (the link monitor does not subscribe to them),
// so a new route is seen within this time.
const routeSrcTTL = time.Second

// routeCache holds the route source addresses towards each remote looked
// up since at: one lookup per peer address and second instead of one per
// InitiateConnection (a netlink round trip, ~7 % of an initiator's CPU).
type routeCache struct {
	at  time.Time
	src map[netip.Addr][]netip.Addr
}

func (rc *routeCache) clear() { rc.src = nil }

// routeSources is the kernel's route source addresses towards remote, in
// its order, from the cache when fresh.
func (st *state) routeSources(remote netip.Addr) []netip.Addr {
	rc, now := &st.rt.routeSrc, st.e.cfg.Now()
	if rc.src == nil || now.Sub(rc.at) >= routeSrcTTL || now.Before(rc.at) {
		rc.src, rc.at = map[netip.Addr][]netip.Addr{}, now
	}
	if srcs, ok := rc.src[remote]; ok {
		return srcs
	}
	srcs, err := st.rt.routeGet(remote)
	if err != nil {
		st.e.log.Debug("route lookup failed", "remote", remote, "error", err)
	}
	rc.src[remote] = srcs // a failure too: the fallback stands for the TTL
	return srcs
}

// kernelRouteSources asks the kernel (ip route get REMOTE) for the source
// addresses of its routes towards remote.
func kernelRouteSources(remote netip.Addr) ([]netip.Addr, error) {
	routes, err := netlink.RouteGet(remote.AsSlice())
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, r := range routes {
		if src, ok := netip.AddrFromSlice(r.Src); ok {
			out = append(out, src.Unmap())
		}
	}
	return out, nil
}

// localFor picks our address towards remote: the kernel's route source,
// restricted to the connection's interfaces when it names some.
func (st *state) localFor(c *connection, remote netip.Addr) (netip.Addr, error) {
	var allowed []netip.Addr
	for _, id := range c.LocalInterfaces {
		if ifc, ok := st.interfaces[id]; ok && ifc.State != 0 {
			for _, p := range ifc.Addrs {
				if p.Addr().Is4() == remote.Is4() && !p.Addr().IsLinkLocalUnicast() {
					allowed = append(allowed, p.Addr())
				}
			}
		}
	}
	for _, src := range st.routeSources(remote) {
		if len(c.LocalInterfaces) == 0 || slices.Contains(allowed, src) {
			return src, nil
		}
	}
	if len(allowed) > 0 {
		return allowed[0], nil
	}
	return netip.Addr{}, fmt.Errorf("no local address towards %s", remote)
}
