package engine

import (
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/iface/ifacetest"
)

func TestSteeringRulePersisted(t *testing.T) {
	dir := t.TempDir()
	links := ifacetest.New()
	links.AddLink("wlan0", "192.0.2.2/24")
	e, err := New(Config{StateDir: dir, Links: links})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateInterface(tctx(t), "wlan", InterfaceSpec{Link: "wlan0", AccessType: AccessWLAN}, false); err != nil {
		t.Fatal(err)
	}
	spec := SteeringSpec{Mode: SteerLoadBalance, Precedence: 3, ProbeInterval: time.Second,
		Match:   FlowMatch{Sources: []string{"10.0.0.0/8"}, Protocol: 17, SourcePorts: PortRange{First: 5060}, DSCP: []uint32{46}},
		Targets: []SteeringTarget{{Interface: "wlan", Weight: 2}, {AccessType: AccessRAN, Weight: 1}}}
	if _, err := e.CreateSteeringRule(tctx(t), "sip", spec); err != nil {
		t.Fatal(err)
	}
	_, err = e.CreateSteeringRule(tctx(t), "bad", SteeringSpec{Mode: SteerPriority, Targets: []SteeringTarget{{Interface: "eth9"}}})
	wantReason(t, err, InvalidArgument, ReasonInterfaceNotFound, "steering_rule.targets[0].interface")
	e.Close()

	links2 := ifacetest.New()
	links2.AddLink("wlan0", "192.0.2.2/24")
	e2, err := New(Config{StateDir: dir, Links: links2})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	r, err := e2.GetSteeringRule(tctx(t), "sip")
	if err != nil || r.Mode != SteerLoadBalance || r.Match.SourcePorts.Last != 5060 || len(r.Targets) != 2 || r.Targets[0].Weight != 2 || r.ProbeInterval != time.Second {
		t.Fatalf("restored %+v %v", r, err)
	}
	if err := e2.DeleteSteeringRule(tctx(t), "sip"); err != nil {
		t.Fatal(err)
	}
	_, err = e2.GetSteeringRule(tctx(t), "sip")
	wantReason(t, err, NotFound, ReasonSteeringNotFound, "name")
}
