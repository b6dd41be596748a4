package mif

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
	"github.com/mifsec/mifsec/test/topo"
)

// steerUDP creates rule id: UDP to port on interface ifc (ACTIVE_STANDBY,
// the other interface as standby).
func steerUDP(t *testing.T, ctx context.Context, n *node, id string, port uint32, ifc, standby string) {
	t.Helper()
	if _, err := n.steer.CreateSteeringRule(ctx, &mifsecv1.CreateSteeringRuleRequest{SteeringRuleId: id,
		SteeringRule: &mifsecv1.SteeringRule{
			Match: &mifsecv1.FlowMatch{Protocol: 17, DestinationPorts: &mifsecv1.PortRange{First: port}},
			Mode:  mifsecv1.SteeringMode_STEERING_MODE_ACTIVE_STANDBY,
			Targets: []*mifsecv1.SteeringTarget{
				{Target: &mifsecv1.SteeringTarget_Interface{Interface: "interfaces/" + ifc}},
				{Target: &mifsecv1.SteeringTarget_Interface{Interface: "interfaces/" + standby}}},
			ProbeInterval: durpb(100 * time.Millisecond),
		}}); err != nil {
		t.Fatalf("CreateSteeringRule %s: %v", id, err)
	}
}

// pathCounters returns packets out per interface of conn's paths.
func pathCounters(t *testing.T, ctx context.Context, n *node, conn string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, p := range paths(t, ctx, n, conn) {
		out[p.Interface] += p.PacketsOut
	}
	return out
}

// Scenario 4: mifsec ↔ mifsec multipath, one IKE SA per access (the
// gateway has one address per access); the second is an RFC 7791 clone of
// the first, moved to its access with MOBIKE: one authentication. One UDP flow is steered to RAN and
// another to WLAN at the same time, and the per-path counters show each
// on its own; then a rule update moves the first flow to WLAN while it
// runs at 1,000 packets/s: nothing lost or duplicated, reordering at most
// what the two paths' delay difference allows (a few datagrams).
func TestMultipathSteering(t *testing.T) {
	t.Parallel()
	tp := topo.Build(t)
	gw := mifsecGW(t, tp, nil)
	ue := mifsecUE(t, tp, topo.GWRAN, func(c *mifsecv1.Connection) {
		c.Multipath = true
		c.RemoteAddresses = []string{topo.GWRAN.String(), topo.GWWLAN.String()}
	})
	ctx := ctxT(t)
	rec := record(t, ctx, "ue", ue)
	grec := record(t, ctx, "gw", gw)
	if _, err := ue.Client.Connections.InitiateConnection(ctx, &mifsecv1.InitiateConnectionRequest{Name: "connections/gw"}); err != nil {
		t.Fatalf("initiate: %v", err)
	}
	eventually(t, 15*time.Second, "both paths up with their own IKE SA", func() (bool, string) {
		r, w := pathOn(t, ctx, ue, "gw", "ran"), pathOn(t, ctx, ue, "gw", "wlan")
		ok := r != nil && w != nil && r.State == mifsecv1.PathState_PATH_STATE_UP && w.State == mifsecv1.PathState_PATH_STATE_UP &&
			r.IkeSa != w.IkeSa && len(ikeSAs(t, ctx, gw, "ues")) == 2
		return ok, "paths " + pathsString(paths(t, ctx, ue, "gw"))
	})
	var vip netip.Addr
	for _, s := range ikeSAs(t, ctx, ue, "gw") {
		if !vip.IsValid() {
			vip = vipOf(t, s)
		}
		if v := vipOf(t, s); v != vip {
			t.Fatalf("the second path got inner address %s, the first %s", v, vip)
		}
		t.Logf("IKE SA %s %s↔%s peer_clone=%v", s.Name, s.LocalAddress, s.RemoteAddress, s.PeerClone)
		if !s.PeerClone {
			t.Fatalf("the gateway did not announce CLONE_IKE_SA_SUPPORTED: %v", s)
		}
	}
	// One authentication: on each end one IKE SA was established by
	// IKE_AUTH and the other cloned from it (RFC 7791), and the end user's
	// clone moved from the first path to its own.
	for _, r := range []*recorder{rec, grec} {
		var established, cloned int
		for _, ev := range r.since(0) {
			if ev.Type == mifsecv1.EventType_EVENT_TYPE_IKE_SA_UP {
				switch ev.Reason {
				case "established":
					established++
				case "cloned":
					cloned++
				}
			}
		}
		if established != 1 || cloned != 1 {
			t.Fatalf("%s: %d IKE SAs established, %d cloned; want 1 and 1:\n%s", r.name, established, cloned, r.dump(0))
		}
	}
	_, mv := rec.wait(t, 0, time.Second, "IKE_SA_MIGRATED of the clone", func(ev *mifsecv1.Event) bool {
		return ev.Type == mifsecv1.EventType_EVENT_TYPE_IKE_SA_MIGRATED && ev.Reason == "clone"
	})
	if pathIface(mv.FromPath) == pathIface(mv.ToPath) {
		t.Fatalf("clone moved %s → %s", mv.FromPath, mv.ToPath)
	}
	steerUDP(t, ctx, ue, "voice", 7301, "ran", "wlan")
	steerUDP(t, ctx, ue, "video", 7302, "wlan", "ran")
	before := pathCounters(t, ctx, ue, "gw")
	voice := startFlow(t, ctx, tp, vip, 7301, 1)
	video := startFlow(t, ctx, tp, vip, 7302, 2)
	voice.flowing(t, 500, 5*time.Second)
	video.flowing(t, 500, 5*time.Second)
	mid := pathCounters(t, ctx, ue, "gw")
	ran, wlan := mid["interfaces/ran"]-before["interfaces/ran"], mid["interfaces/wlan"]-before["interfaces/wlan"]
	t.Logf("both flows running: RAN path +%d packets, WLAN path +%d", ran, wlan)
	if ran < 400 || wlan < 400 {
		t.Fatalf("each path should carry one flow: RAN +%d, WLAN +%d (%v)", ran, wlan, pathsString(paths(t, ctx, ue, "gw")))
	}
	// Move voice to WLAN under load.
	m := rec.mark()
	start := time.Now()
	if _, err := ue.steer.UpdateSteeringRule(ctx, &mifsecv1.UpdateSteeringRuleRequest{
		SteeringRule: &mifsecv1.SteeringRule{Name: "steeringRules/voice", Targets: []*mifsecv1.SteeringTarget{
			{Target: &mifsecv1.SteeringTarget_Interface{Interface: "interfaces/wlan"}},
			{Target: &mifsecv1.SteeringTarget_Interface{Interface: "interfaces/ran"}}}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"targets"}}}); err != nil {
		t.Fatalf("UpdateSteeringRule: %v", err)
	}
	took := time.Since(start)
	_, moved := rec.wait(t, m, 5*time.Second, "FLOWS_MOVED", is(mifsecv1.EventType_EVENT_TYPE_FLOWS_MOVED))
	if moved.GetSteeringRule().GetName() != "steeringRules/voice" || pathIface(moved.ToPath) != "wlan" {
		t.Fatalf("flows moved: %s", evString(moved))
	}
	// The rule's event carries the paths in use after the change, so the
	// flows' move comes first.
	rec.wait(t, m, 5*time.Second, "STEERING_RULE_UPDATED", is(mifsecv1.EventType_EVENT_TYPE_STEERING_RULE_UPDATED))
	rec.inOrder(t, m, mifsecv1.EventType_EVENT_TYPE_FLOWS_MOVED, mifsecv1.EventType_EVENT_TYPE_STEERING_RULE_UPDATED)
	afterMove := pathCounters(t, ctx, ue, "gw")
	voice.flowing(t, 500, 5*time.Second)
	end := pathCounters(t, ctx, ue, "gw")
	if d := end["interfaces/ran"] - afterMove["interfaces/ran"]; d > 20 {
		t.Fatalf("RAN still carries %d packets after voice moved to WLAN", d)
	}
	sv, sd := voice.stop(ctx), video.stop(ctx)
	t.Logf("rule update returned after %v; voice %v; video %v", took.Round(time.Microsecond), sv, sd)
	if sv.Lost != 0 || sv.Duplicates != 0 || sv.MaxReorder > 10 {
		t.Fatalf("voice across the rule update: %v", sv)
	}
	if sd.Lost != 0 || sd.Duplicates != 0 || sd.Reordered != 0 {
		t.Fatalf("video (untouched): %v", sd)
	}
}

func pathsString(ps []*mifsecv1.Path) string {
	s := ""
	for _, p := range ps {
		s += " " + p.Name + "=" + p.State.String() + "(" + p.LocalAddress + "↔" + p.RemoteAddress + " ike " + p.IkeSa + ")"
	}
	return s
}

// pathIface is the interface part of a path id (`{iface}-{remote}`).
func pathIface(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			name = name[i+1:]
			break
		}
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '-' {
			return name[:i]
		}
	}
	return name
}
