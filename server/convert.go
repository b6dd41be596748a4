package server

import (
	"net/netip"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/iface"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// This file is the only place where proto and engine types meet.

const interfaces = "interfaces"

var accessToProto = map[engine.AccessType]mifsecv1.AccessType{
	engine.AccessRAN:       mifsecv1.AccessType_ACCESS_TYPE_RAN,
	engine.AccessWLAN:      mifsecv1.AccessType_ACCESS_TYPE_WLAN,
	engine.AccessWired:     mifsecv1.AccessType_ACCESS_TYPE_WIRED,
	engine.AccessSatellite: mifsecv1.AccessType_ACCESS_TYPE_SATELLITE,
	engine.AccessOther:     mifsecv1.AccessType_ACCESS_TYPE_OTHER,
}

func accessFromProto(a mifsecv1.AccessType, field string) (engine.AccessType, error) {
	for k, v := range accessToProto {
		if v == a {
			return k, nil
		}
	}
	return 0, invalid(engine.ReasonInvalidAccessType, field, "must be one of ACCESS_TYPE_RAN, _WLAN, _WIRED, _SATELLITE, _OTHER")
}

var stateToProto = map[iface.State]mifsecv1.InterfaceState{
	iface.Up:     mifsecv1.InterfaceState_INTERFACE_STATE_UP,
	iface.Down:   mifsecv1.InterfaceState_INTERFACE_STATE_DOWN,
	iface.Absent: mifsecv1.InterfaceState_INTERFACE_STATE_ABSENT,
}

func interfaceToProto(i *engine.Interface) *mifsecv1.Interface {
	return &mifsecv1.Interface{
		Name:       interfaces + "/" + i.ID,
		Link:       i.Link,
		AccessType: accessToProto[i.AccessType],
		Priority:   i.Priority,
		Metered:    i.Metered,
		State:      stateToProto[i.State],
		Addresses:  prefixStrings(i.Addrs),
		Counters: &mifsecv1.InterfaceCounters{
			RxBytes:         i.Counters.RxBytes,
			TxBytes:         i.Counters.TxBytes,
			RxPackets:       i.Counters.RxPackets,
			TxPackets:       i.Counters.TxPackets,
			LinkTransitions: i.Counters.LinkTransitions,
			AddressChanges:  i.Counters.AddressChanges,
		},
		CreateTime: timestamppb.New(i.CreateTime),
		UpdateTime: timestamppb.New(i.UpdateTime),
		LinkIndex:  int32(i.Index),
		Mtu:        uint32(i.MTU),
	}
}

// interfaceSpecFromProto converts the configurable fields. With strict set
// (create), an unspecified access type is an error; updates check only the
// fields in their mask.
func interfaceSpecFromProto(p *mifsecv1.Interface, checkAccess bool) (engine.InterfaceSpec, error) {
	spec := engine.InterfaceSpec{Link: p.GetLink(), Priority: p.GetPriority(), Metered: p.GetMetered()}
	if checkAccess {
		a, err := accessFromProto(p.GetAccessType(), "interface.access_type")
		if err != nil {
			return spec, err
		}
		spec.AccessType = a
	}
	return spec, nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

var eventTypeToProto = map[engine.EventType]mifsecv1.EventType{
	engine.EventSnapshot:                mifsecv1.EventType_EVENT_TYPE_SNAPSHOT,
	engine.EventEndOfSnapshot:           mifsecv1.EventType_EVENT_TYPE_END_OF_SNAPSHOT,
	engine.EventInterfaceCreated:        mifsecv1.EventType_EVENT_TYPE_INTERFACE_CREATED,
	engine.EventInterfaceUpdated:        mifsecv1.EventType_EVENT_TYPE_INTERFACE_UPDATED,
	engine.EventInterfaceDeleted:        mifsecv1.EventType_EVENT_TYPE_INTERFACE_DELETED,
	engine.EventInterfaceLinkUp:         mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_UP,
	engine.EventInterfaceLinkDown:       mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_DOWN,
	engine.EventInterfaceLinkAbsent:     mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_ABSENT,
	engine.EventInterfaceAddressAdded:   mifsecv1.EventType_EVENT_TYPE_INTERFACE_ADDRESS_ADDED,
	engine.EventInterfaceAddressRemoved: mifsecv1.EventType_EVENT_TYPE_INTERFACE_ADDRESS_REMOVED,
	engine.EventIKESAUp:                 mifsecv1.EventType_EVENT_TYPE_IKE_SA_UP,
	engine.EventIKESADown:               mifsecv1.EventType_EVENT_TYPE_IKE_SA_DOWN,
	engine.EventIKESARekeyed:            mifsecv1.EventType_EVENT_TYPE_IKE_SA_REKEYED,
	engine.EventChildSAUp:               mifsecv1.EventType_EVENT_TYPE_CHILD_SA_UP,
	engine.EventChildSADown:             mifsecv1.EventType_EVENT_TYPE_CHILD_SA_DOWN,
	engine.EventChildSARekeyed:          mifsecv1.EventType_EVENT_TYPE_CHILD_SA_REKEYED,
	engine.EventPathUp:                  mifsecv1.EventType_EVENT_TYPE_PATH_UP,
	engine.EventPathDown:                mifsecv1.EventType_EVENT_TYPE_PATH_DOWN,
	engine.EventFlowsMoved:              mifsecv1.EventType_EVENT_TYPE_FLOWS_MOVED,
	engine.EventIKESAMigrated:           mifsecv1.EventType_EVENT_TYPE_IKE_SA_MIGRATED,
	engine.EventAddressesAnnounced:      mifsecv1.EventType_EVENT_TYPE_ADDRESSES_ANNOUNCED,
	engine.EventPeerAddresses:           mifsecv1.EventType_EVENT_TYPE_PEER_ADDRESSES,
	engine.EventSteeringRuleCreated:     mifsecv1.EventType_EVENT_TYPE_STEERING_RULE_CREATED,
	engine.EventSteeringRuleUpdated:     mifsecv1.EventType_EVENT_TYPE_STEERING_RULE_UPDATED,
	engine.EventSteeringRuleDeleted:     mifsecv1.EventType_EVENT_TYPE_STEERING_RULE_DELETED,
}

func eventToProto(ev engine.Event) *mifsecv1.Event {
	p := &mifsecv1.Event{
		Sequence: ev.Seq,
		Time:     timestamppb.New(ev.Time),
		Type:     eventTypeToProto[ev.Type],
		Reason:   ev.Reason,
	}
	switch {
	case ev.Interface != nil:
		p.Subject = &mifsecv1.Event_Interface{Interface: interfaceToProto(ev.Interface)}
	case ev.IKESA != nil:
		p.Subject = &mifsecv1.Event_IkeSa{IkeSa: ikeSAToProto(*ev.IKESA)}
	case ev.ChildSA != nil:
		p.Subject = &mifsecv1.Event_ChildSa{ChildSa: childSAToProto(*ev.ChildSA)}
	case ev.Path != nil:
		p.Subject = &mifsecv1.Event_Path{Path: pathToProto(*ev.Path)}
	case ev.SteeringRule != nil:
		p.Subject = &mifsecv1.Event_SteeringRule{SteeringRule: steeringToProto(*ev.SteeringRule)}
	}
	if ev.Conn != "" {
		p.Connection = connections + "/" + ev.Conn
	}
	if ev.From.ID != "" {
		p.FromPath = pathName(ev.From)
	}
	if ev.To.ID != "" {
		p.ToPath = pathName(ev.To)
	}
	p.Addresses = addrStrings(ev.Addrs)
	if ev.Address.IsValid() {
		p.Address = ev.Address.String()
	}
	return p
}

var categoryFromProto = map[mifsecv1.EventCategory]engine.Category{
	mifsecv1.EventCategory_EVENT_CATEGORY_INTERFACE: engine.CategoryInterface,
	mifsecv1.EventCategory_EVENT_CATEGORY_IKE_SA:    engine.CategoryIKESA,
	mifsecv1.EventCategory_EVENT_CATEGORY_CHILD_SA:  engine.CategoryChildSA,
	mifsecv1.EventCategory_EVENT_CATEGORY_PATH:      engine.CategoryPath,
	mifsecv1.EventCategory_EVENT_CATEGORY_STEERING:  engine.CategorySteering,
	mifsecv1.EventCategory_EVENT_CATEGORY_MOBILITY:  engine.CategoryMobility,
}
