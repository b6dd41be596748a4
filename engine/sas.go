package engine

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/iface"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/sa"
)

// IKESAView is what the API shows of an IKE SA.
type IKESAView struct {
	Conn        string
	Name        string // initiator SPI, 16 hex digits
	State       sa.State
	Role        sa.Role
	SPIi, SPIr  uint64
	Local       netip.AddrPort
	Remote      netip.AddrPort
	LocalID     string
	RemoteID    string
	Proposal    string
	NATLocal    bool
	NATRemote   bool
	Caps        sa.Capabilities
	VirtualIPs  []netip.Addr
	Established time.Time
	RekeyAt     time.Time
	DownReason  sa.Reason
	DownDetail  string
	Children    int
	MsgsIn      uint64
	MsgsOut     uint64
}

// ChildSAView is what the API shows of a Child SA.
type ChildSAView struct {
	Conn      string
	IKE       string
	Name      string // inbound SPI, 8 hex digits
	Child     string
	State     string
	Mode      dataplane.Mode
	SPIIn     uint32
	SPIOut    uint32
	LocalTS   []string
	RemoteTS  []string
	Proposal  string
	In, Out   dataplane.Counters
	Installed time.Time
	RekeyAt   time.Time
	Local     netip.AddrPort
	Remote    netip.AddrPort
}

func (st *state) ikeView(s *ikeSA) IKESAView {
	in := s.m.Info()
	v := IKESAView{Conn: s.conn, Name: s.name(), State: in.State, Role: in.Role, SPIi: in.SPIi, SPIr: in.SPIr,
		Local: in.Local, Remote: in.Remote, LocalID: in.LocalID.String(), RemoteID: in.RemoteID.String(),
		NATLocal: in.NATLocal, NATRemote: in.NATRemote, Caps: in.Capabilities, VirtualIPs: in.VirtualIPs,
		Established: in.Established, RekeyAt: in.RekeyAt, DownReason: in.DownReason, DownDetail: in.DownDetail,
		Children: len(in.Children), MsgsIn: in.Stats.Requests + in.Stats.Responses, MsgsOut: in.Stats.Retransmits,
		Proposal: in.Algorithms}
	if v.DownReason == sa.ReasonNone {
		v.DownReason, v.DownDetail = s.downWhy, s.downDetail()
	}
	return v
}

func (st *state) childViews(s *ikeSA, counters bool) []ChildSAView {
	var out []ChildSAView
	for _, c := range s.m.Info().Children {
		v := st.childView(s, c)
		if counters && st.rt.dp != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			v.In, _ = st.rt.dp.Counters(ctx, c.InSPI, dataplane.In)
			v.Out, _ = st.rt.dp.Counters(ctx, c.OutSPI, dataplane.Out)
			cancel()
		}
		out = append(out, v)
	}
	return out
}

// connSAs names a connection's IKE SAs and sums up its state.
func (st *state) connSAs(id string) ([]string, ConnState) {
	state := ConnIdle
	var names []string
	for _, s := range st.rt.byConn[id] {
		names = append(names, s.name())
		switch st := s.m.State(); {
		case st == sa.StateEstablished:
			state = ConnEstablished
		case state == ConnIdle && (st == sa.StateConnecting || st == sa.StateAuthenticating):
			state = ConnConnecting
		}
	}
	slices.Sort(names)
	return names, state
}

func (st *state) findIKE(conn, name string) (*ikeSA, error) {
	if spi, ok := parseSAName(name); ok {
		for c, l := range st.rt.byConn {
			if conn != "-" && c != conn {
				continue
			}
			for _, s := range l {
				if s.spii == spi {
					return s, nil
				}
			}
		}
	}
	return nil, errf(NotFound, "IKE_SA_NOT_FOUND", "name", "IKE SA %s/%s not found", conn, name)
}

// ListIKESAs lists IKE SAs of a connection ("-" for all) in name order.
func (e *Engine) ListIKESAs(ctx context.Context, conn, after string, limit int) ([]IKESAView, bool, error) {
	return listPage(ctx, e, after, limit, func(st *state) []IKESAView {
		var out []IKESAView
		for _, s := range st.rt.sas() {
			if conn == "-" || s.conn == conn {
				out = append(out, st.ikeView(s))
			}
		}
		slices.SortFunc(out, func(a, b IKESAView) int { return strings.Compare(a.Conn+"/"+a.Name, b.Conn+"/"+b.Name) })
		return out
	}, func(v IKESAView) string { return v.Conn + "/" + v.Name })
}

// GetIKESA returns one IKE SA.
func (e *Engine) GetIKESA(ctx context.Context, conn, name string) (IKESAView, error) {
	return do(ctx, e, func(st *state) (IKESAView, error) {
		s, err := st.findIKE(conn, name)
		if err != nil {
			return IKESAView{}, err
		}
		return st.ikeView(s), nil
	})
}

// ListChildSAs lists Child SAs of an IKE SA; "-" for conn or ike lists across.
func (e *Engine) ListChildSAs(ctx context.Context, conn, ikeName, after string, limit int) ([]ChildSAView, bool, error) {
	return listPage(ctx, e, after, limit, func(st *state) []ChildSAView {
		var out []ChildSAView
		spi, named := parseSAName(ikeName)
		for _, s := range st.rt.sas() {
			if conn != "-" && s.conn != conn {
				continue
			}
			if ikeName != "-" && (!named || s.spii != spi) {
				continue
			}
			out = append(out, st.childViews(s, true)...)
		}
		slices.SortFunc(out, func(a, b ChildSAView) int { return strings.Compare(childKey(a), childKey(b)) })
		return out
	}, childKey)
}

func childKey(v ChildSAView) string { return v.Conn + "/" + v.IKE + "/" + v.Name }

// GetChildSA returns one Child SA with its counters.
func (e *Engine) GetChildSA(ctx context.Context, conn, ikeName, name string) (ChildSAView, error) {
	return do(ctx, e, func(st *state) (ChildSAView, error) {
		s, err := st.findIKE(conn, ikeName)
		if err != nil {
			return ChildSAView{}, err
		}
		for _, v := range st.childViews(s, true) {
			if v.Name == name {
				return v, nil
			}
		}
		return ChildSAView{}, errf(NotFound, "CHILD_SA_NOT_FOUND", "name", "Child SA %s not found", name)
	})
}

// InitiateConnection starts an IKE SA for an initiator connection and waits
// until it is established (or fails, or ctx ends; the attempt goes on).
func (e *Engine) InitiateConnection(ctx context.Context, id, child string) (string, error) {
	wait, err := do(ctx, e, func(st *state) (chan initResult, error) {
		c, err := st.connection(id, "name")
		if err != nil {
			return nil, err
		}
		if c.Role != RoleInitiator {
			return nil, errf(FailedPrecondition, "NOT_AN_INITIATOR", "name", "connection %q is a responder", id)
		}
		if child != "" && !slices.ContainsFunc(c.Children, func(ch ChildSpec) bool { return ch.Name == child }) {
			return nil, errf(InvalidArgument, "CHILD_NOT_FOUND", "child", "connection %q has no child %q", id, child)
		}
		w := make(chan initResult, 1)
		// An established IKE SA only needs its missing children.
		for _, s := range st.rt.byConn[id] {
			if s.up {
				st.drive(s, sa.Command{Kind: sa.CmdInitiate})
				w <- initResult{name: s.name()}
				return w, nil
			}
		}
		s, err := st.initiate(c)
		if err != nil {
			return nil, err
		}
		if !st.rt.live(s) {
			// The machine closed at once (a configuration it refused).
			return nil, st.downError(s)
		}
		s.addWaiter(w)
		return w, nil
	})
	if err != nil {
		return "", err
	}
	select {
	case r := <-wait:
		return r.name, r.err
	case <-ctx.Done():
		return "", ctxError(ctx)
	}
}

// initiate creates and starts an initiator machine for c.
func (st *state) initiate(c *connection) (*ikeSA, error) {
	if st.rt.tr == nil {
		return nil, errf(FailedPrecondition, "NO_TRANSPORT", "", "this engine has no IKE transport")
	}
	remoteAddr := c.addrs[0]
	local, err := st.localFor(c, remoteAddr)
	if err != nil {
		return nil, &Error{Code: FailedPrecondition, Reason: "NO_LOCAL_ADDRESS", Field: "connection.local_interfaces", Msg: err.Error()}
	}
	port := st.rt.tr.Port()
	cfg, err := st.saTemplate(c)
	if err != nil {
		return nil, &Error{Code: FailedPrecondition, Reason: "CONNECTION_UNUSABLE", Msg: err.Error()}
	}
	pth := st.pathFor(c.ID, local, remoteAddr)
	if err := st.rt.tr.ListenNAT(local); err != nil {
		st.e.log.Debug("NAT-T port", "local", local, "error", err)
	}
	m, out := sa.NewInitiatorAt(cfg, netip.AddrPortFrom(local, port), netip.AddrPortFrom(remoteAddr, c.RemotePort), st.e.cfg.Now(), st.rt.rng)
	m.Place(sa.Placement{Path: pth.tag, Addrs: st.startAddrs(c, local)})
	s := &ikeSA{conn: c.ID, m: m, hidx: -1, path: pth}
	st.apply(s, out)
	return s, nil
}

// TerminateConnection deletes the connection's IKE SAs.
func (e *Engine) TerminateConnection(ctx context.Context, id string) error {
	_, err := do(ctx, e, func(st *state) (struct{}, error) {
		if _, err := st.connection(id, "name"); err != nil {
			return struct{}{}, err
		}
		for _, s := range st.connSAList(id) {
			st.drive(s, sa.Command{Kind: sa.CmdTerminate})
		}
		return struct{}{}, nil
	})
	return err
}

// TerminateIKESA deletes one IKE SA with its Child SAs.
func (e *Engine) TerminateIKESA(ctx context.Context, conn, name string) error {
	_, err := do(ctx, e, func(st *state) (struct{}, error) {
		s, err := st.findIKE(conn, name)
		if err != nil {
			return struct{}{}, err
		}
		st.drive(s, sa.Command{Kind: sa.CmdTerminate})
		return struct{}{}, nil
	})
	return err
}

// RekeyIKESA rekeys an IKE SA and waits for the new one.
func (e *Engine) RekeyIKESA(ctx context.Context, conn, name string) (IKESAView, error) {
	wait, err := do(ctx, e, func(st *state) (chan rekeyResult, error) {
		s, err := st.findIKE(conn, name)
		if err != nil {
			return nil, err
		}
		if !s.up {
			return nil, errf(FailedPrecondition, "IKE_SA_NOT_ESTABLISHED", "name", "IKE SA %s is not established", name)
		}
		w := make(chan rekeyResult, 1)
		s.addRekeyWaiter(w)
		st.drive(s, sa.Command{Kind: sa.CmdRekeyIKE})
		return w, nil
	})
	if err != nil {
		return IKESAView{}, err
	}
	select {
	case r := <-wait:
		if r.err != nil {
			return IKESAView{}, r.err
		}
		return e.GetIKESA(ctx, conn, r.name)
	case <-ctx.Done():
		return IKESAView{}, ctxError(ctx)
	}
}

// RekeyChildSA rekeys a Child SA and waits for the new one.
func (e *Engine) RekeyChildSA(ctx context.Context, conn, ikeName, name string) (ChildSAView, error) {
	spi, err := strconv.ParseUint(name, 16, 32)
	if err != nil {
		return ChildSAView{}, errf(InvalidArgument, "INVALID_NAME", "name", "Child SA names are 8 hex digits")
	}
	wait, err := do(ctx, e, func(st *state) (chan rekeyResult, error) {
		s, err := st.findIKE(conn, ikeName)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(s.m.Info().Children, func(c sa.ChildInfo) bool { return c.InSPI == uint32(spi) }) {
			return nil, errf(NotFound, "CHILD_SA_NOT_FOUND", "name", "Child SA %s not found", name)
		}
		w := make(chan rekeyResult, 1)
		s.addChildRekeyWaiter(childWaiter{spi: uint32(spi), c: w})
		st.drive(s, sa.Command{Kind: sa.CmdRekeyChild, SPI: uint32(spi)})
		return w, nil
	})
	if err != nil {
		return ChildSAView{}, err
	}
	select {
	case r := <-wait:
		if r.err != nil {
			return ChildSAView{}, r.err
		}
		return e.GetChildSA(ctx, conn, ikeName, r.name)
	case <-ctx.Done():
		return ChildSAView{}, ctxError(ctx)
	}
}

// TerminateChildSA deletes a Child SA.
func (e *Engine) TerminateChildSA(ctx context.Context, conn, ikeName, name string) error {
	spi, err := strconv.ParseUint(name, 16, 32)
	if err != nil {
		return errf(InvalidArgument, "INVALID_NAME", "name", "Child SA names are 8 hex digits")
	}
	_, err = do(ctx, e, func(st *state) (struct{}, error) {
		s, err := st.findIKE(conn, ikeName)
		if err != nil {
			return struct{}{}, err
		}
		if !slices.ContainsFunc(s.m.Info().Children, func(c sa.ChildInfo) bool { return c.InSPI == uint32(spi) }) {
			return struct{}{}, errf(NotFound, "CHILD_SA_NOT_FOUND", "name", "Child SA %s not found", name)
		}
		st.drive(s, sa.Command{Kind: sa.CmdDeleteChild, SPI: uint32(spi)})
		return struct{}{}, nil
	})
	return err
}

// saEvent turns a machine's event into engine events, routes and waiter replies.
func (st *state) saEvent(s *ikeSA, ev sa.Event) {
	switch ev.Kind {
	case sa.EventIKEUp:
		if ev.ClonedFrom != 0 && st.cloneUp(s, ev) { // RFC 7791, multipath.go
			break
		}
		st.settle(s)
		if ev.Replaces != 0 {
			// Make-before-break re-authentication: the new IKE SA is up.
			if old := st.rt.bySPI[ev.Replaces]; old != nil && old != s {
				st.drive(old, sa.Command{Kind: sa.CmdTerminate})
			}
		}
		s.up = true
		st.upChanged(s) // paths.go
		peer := ev.PeerID.String()
		st.filePeer(s, peer)
		why := "established"
		if ev.ClonedFrom != 0 {
			why = "cloned" // no handshake: the peer's RFC 7791 clone
		} else {
			// One line per IKE SA coming up and going down at info.
			st.e.log.Info("IKE SA up", "connection", s.conn, "ike_sa", s.logName(), "peer", peer, "remote", s.m.Info().Remote)
			st.rt.stats.HandshakesOK++
			if in := s.m.Info(); !in.Created.IsZero() && !in.Established.IsZero() {
				st.rt.stats.Handshake.observe(in.Established.Sub(in.Created))
			}
		}
		if ev.InitialContact {
			st.initialContact(s, peer)
		}
		st.publishIKE(s, EventIKESAUp, why, sa.ReasonNone, "")
		st.saUp(s)
		// InitiateConnection returns once the whole output is applied
		// (answerWaiters): with the Child SA's routes, not before them.
	case sa.EventIKEDown:
		if !s.up && st.mp.clones[s] == nil {
			st.rt.stats.HandshakesFailed++
		}
		s.up = false
		st.upChanged(s) // paths.go
		s.setDown(ev.Reason, ev.Detail)
		st.e.log.Info("IKE SA down", "connection", s.conn, "ike_sa", s.logName(), "reason", ev.Reason, "detail", ev.Detail)
		st.publishIKE(s, EventIKESADown, ev.Reason.String(), ev.Reason, ev.Detail)
	case sa.EventIKERekeyed:
		st.publishIKE(s, EventIKESARekeyed, "rekeyed", sa.ReasonNone, "")
		s.rekeyed(s.name())
	case sa.EventChildUp, sa.EventChildRekeyed:
		t := EventChildSAUp
		if ev.Kind == sa.EventChildRekeyed {
			t = EventChildSARekeyed
			s.resolveChildRekey(ev.OldChild.InSPI, childName(ev.Child.InSPI))
			st.moveRekeyed(s, ev.OldChild)
		}
		if ev.Kind == sa.EventChildUp {
			st.installRoutes(s, ev.Child)
		}
		st.publishChild(s, ev.Child, t, ev.Kind.String())
		st.clonePlaced(s) // a clone's path is up with its first Child SA
	case sa.EventChildDown, sa.EventChildFailed:
		st.publishChild(s, ev.Child, EventChildSADown, ev.Reason.String())
		s.resolveChildRekeyErr(ev.Child.InSPI, ev.Reason)
		st.clonePlaced(s)
	case sa.EventCloneFailed:
		st.cloneFailed(s, ev) // multipath.go
	case sa.EventMigrated, sa.EventMigrateFailed, sa.EventPeerAddresses, sa.EventProbe:
		st.mobilityEvent(s, ev) // mobility.go
	case sa.EventAuthFailed:
		st.e.log.Warn("authentication failed", "connection", s.conn, "detail", ev.Detail)
	}
}

func (st *state) childView(s *ikeSA, c sa.ChildInfo) ChildSAView {
	in := s.m.Info()
	v := ChildSAView{Conn: s.conn, IKE: s.name(), Name: childName(c.InSPI), Child: c.Name, State: c.State,
		Mode: c.Mode, SPIIn: c.InSPI, SPIOut: c.OutSPI, Installed: c.Created, RekeyAt: c.RekeyAt,
		Local: in.Local, Remote: in.Remote, Proposal: c.Algorithms}
	for _, t := range c.LocalTS {
		v.LocalTS = append(v.LocalTS, tsString(t))
	}
	for _, t := range c.RemoteTS {
		v.RemoteTS = append(v.RemoteTS, tsString(t))
	}
	return v
}

// initialContact deletes older IKE SAs of the same connection and peer
// identity peer (RFC 7296 §2.4: the peer has no state for them any more).
func (st *state) initialContact(s *ikeSA, peer string) {
	for _, o := range st.rt.peersOf(s.conn, peer, s) { // a copy: drive may drop o
		if o.up {
			st.e.log.Info("INITIAL_CONTACT: replacing older IKE SA", "connection", s.conn, "peer", peer)
			st.drive(o, sa.Command{Kind: sa.CmdTerminate})
		}
	}
}

// kernelRouteOps changes the kernel's routes and addresses through one
// iface.Routes: one rtnetlink socket kept open and link indexes cached,
// instead of a socket and a link lookup per change (issue 7: on both ends
// the routes of a Child SA are in the way of its first packet).
func kernelRouteOps(r *iface.Routes) routeOps {
	return routeOps{addRoute: r.AddRoute, delRoute: r.DelRoute, addAddr: r.AddAddr, delAddr: r.DelAddr,
		pinHost: r.PinHostRoute, close: r.Close, forget: r.Forget}
}

// installRoutes makes inner traffic reach the data plane's TUN: an
// initiator adds its virtual IP and routes the remote selectors; a gateway
// routes the addresses it leased to the peer. A transport-mode Child SA
// (host to host, RFC 4303 §3.1.1), in either role, routes the peer's
// addresses (its selectors) with our own (ours) as source.
func (st *state) installRoutes(s *ikeSA, c sa.ChildInfo) {
	tun, ok := st.rt.dp.(interface{ TUNName() string })
	if !ok || st.rt.dp == nil {
		return
	}
	link := tun.TUNName()
	in := s.m.Info()
	add := func(p netip.Prefix, src netip.Addr) {
		if slices.Contains(s.routes, p) {
			return
		}
		// Several IKE SAs (one per path) share a route: count its users.
		if st.rt.routeUsers[p] == 0 {
			if err := st.rt.routes.addRoute(link, p, src); err != nil {
				st.e.log.Warn("route failed", "prefix", p, "error", err)
				return
			}
		}
		st.rt.routeUsers[p]++
		s.routes = append(s.routes, p)
	}
	if c.Mode == dataplane.Transport {
		st.transportRoutes(s, c, add)
		return
	}
	if in.Role == sa.Initiator || len(in.VirtualIPs) > 0 && in.Role != sa.Responder {
		var src netip.Addr
		for _, v := range in.VirtualIPs {
			st.holdAddr(s, link, netip.PrefixFrom(v, v.BitLen()))
			src = v
		}
		for _, t := range c.RemoteTS {
			for _, p := range tsPrefixes(t) {
				if p.Contains(in.Remote.Addr()) {
					if _, err := st.rt.routes.pinHost(in.Remote.Addr()); err != nil {
						st.e.log.Warn("could not pin the route to the peer", "error", err)
					}
				}
				if src.IsValid() && src.Is4() != p.Addr().Is4() {
					add(p, netip.Addr{})
					continue
				}
				add(p, src)
			}
		}
		return
	}
	for _, v := range in.VirtualIPs {
		add(netip.PrefixFrom(v, v.BitLen()), netip.Addr{})
	}
}

// transportRoutes routes the peer's selectors of a transport-mode Child
// SA into the TUN, the source being our selector's address when it is one
// host (the userspace data plane rebuilds the inner header from the
// selectors). A selector holding the peer's IKE address is left out: ESP
// to it would enter the TUN again.
func (st *state) transportRoutes(s *ikeSA, c sa.ChildInfo, add func(netip.Prefix, netip.Addr)) {
	in := s.m.Info()
	var src4, src6 netip.Addr
	for _, t := range c.LocalTS {
		if ps := tsPrefixes(t); len(ps) == 1 && ps[0].IsSingleIP() {
			if a := ps[0].Addr(); a.Is4() && !src4.IsValid() {
				src4 = a
			} else if a.Is6() && !src6.IsValid() {
				src6 = a
			}
		}
	}
	for _, t := range c.RemoteTS {
		for _, p := range tsPrefixes(t) {
			if p.Contains(in.Remote.Addr().Unmap()) {
				st.e.log.Warn("transport-mode selector holds the peer's IKE address: not routed into the TUN",
					"connection", s.conn, "selector", p, "peer", in.Remote.Addr())
				continue
			}
			src := src4
			if p.Addr().Is6() {
				src = src6
			}
			add(p, src)
		}
	}
}

func (st *state) removeRoutes(s *ikeSA) {
	tun, ok := st.rt.dp.(interface{ TUNName() string })
	if !ok || st.rt.dp == nil {
		return
	}
	for _, p := range s.routes {
		if st.rt.routeUsers[p]--; st.rt.routeUsers[p] > 0 {
			continue
		}
		delete(st.rt.routeUsers, p)
		st.rt.routes.delRoute(tun.TUNName(), p)
	}
	s.routes = nil
	// The virtual IP leaves the TUN with the last IKE SA holding it
	// (RFC 7296 §3.15.1: the address is lent for the IKE SA's life).
	for _, p := range s.addrs {
		if st.rt.addrUsers[p]--; st.rt.addrUsers[p] > 0 {
			continue
		}
		delete(st.rt.addrUsers, p)
		if err := st.rt.routes.delAddr(tun.TUNName(), p); err != nil {
			st.e.log.Warn("could not remove the virtual IP", "address", p, "error", err)
		}
	}
	s.addrs = nil
}

// holdAddr puts a virtual IP on the TUN for s, once per IKE SA, the
// first holder adding it.
func (st *state) holdAddr(s *ikeSA, link string, p netip.Prefix) {
	if slices.Contains(s.addrs, p) {
		return
	}
	if st.rt.addrUsers[p] == 0 {
		if err := st.rt.routes.addAddr(link, p); err != nil {
			st.e.log.Warn("virtual IP failed", "address", p, "error", err)
			return
		}
	}
	st.rt.addrUsers[p]++
	s.addrs = append(s.addrs, p)
}

// tsString writes a traffic selector the way ParseSelector reads it when it
// is a prefix, else as a range.
func tsString(t ike.TrafficSelector) string {
	ps := tsPrefixes(t)
	var addr string
	if len(ps) == 1 {
		addr = ps[0].String()
	} else {
		addr = t.Start.String() + "-" + t.End.String()
	}
	sel := dataplane.Selector{Prefix: netip.PrefixFrom(t.Start, 0), Protocol: t.IPProtocol, PortFrom: t.StartPort, PortTo: t.EndPort}
	return addr + strings.TrimPrefix(FormatSelector(sel), sel.Prefix.String())
}

// tsPrefixes covers a selector's address range with prefixes.
func tsPrefixes(t ike.TrafficSelector) []netip.Prefix {
	var out []netip.Prefix
	a, end := t.Start, t.End
	if !a.IsValid() || !end.IsValid() || end.Less(a) {
		return nil
	}
	for len(out) < 64 {
		bits := a.BitLen()
		// The largest aligned prefix starting at a that stays within end.
		for bits > 0 {
			p := netip.PrefixFrom(a, bits-1).Masked()
			if p.Addr() != a || lastAddr(p).Compare(end) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(a, bits)
		out = append(out, p)
		last := lastAddr(p)
		if last.Compare(end) >= 0 {
			break
		}
		a = last.Next()
	}
	return out
}
