package bootstrap

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/mifsec/mifsec/engine"
)

// Engine is what Apply calls: the same methods the API uses.
type Engine interface {
	GetInterface(ctx context.Context, id string) (engine.Interface, error)
	CreateInterface(ctx context.Context, id string, spec engine.InterfaceSpec, allowMissing bool) (engine.Interface, error)
	UpdateInterface(ctx context.Context, id string, spec engine.InterfaceSpec, fields []string) (engine.Interface, error)
	GetSecret(ctx context.Context, id string) (engine.SecretInfo, error)
	CreateSecret(ctx context.Context, id string, typ engine.SecretType, value []byte) (engine.SecretInfo, error)
	GetPool(ctx context.Context, id string) (engine.PoolInfo, error)
	CreatePool(ctx context.Context, id string, spec engine.PoolSpec) (engine.PoolInfo, error)
	UpdatePool(ctx context.Context, id string, spec engine.PoolSpec, fields []string) (engine.PoolInfo, error)
	GetConnection(ctx context.Context, id string) (engine.ConnectionInfo, error)
	CreateConnection(ctx context.Context, id string, spec engine.ConnectionSpec) (engine.ConnectionInfo, error)
	UpdateConnection(ctx context.Context, id string, spec engine.ConnectionSpec, fields []string) (engine.ConnectionInfo, error)
	GetSteeringRule(ctx context.Context, id string) (engine.SteeringRule, error)
	CreateSteeringRule(ctx context.Context, id string, spec engine.SteeringSpec) (engine.SteeringRule, error)
	UpdateSteeringRule(ctx context.Context, id string, spec engine.SteeringSpec, fields []string) (engine.SteeringRule, error)
}

// Action is what Apply did to one object.
type Action uint8

const (
	Unchanged Action = iota + 1
	Created
	Updated
)

func (a Action) String() string {
	switch a {
	case Unchanged:
		return "unchanged"
	case Created:
		return "created"
	case Updated:
		return "updated"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Result reports one object.
type Result struct {
	Kind, Name string
	Action     Action
	// Fields are the updated fields.
	Fields []string
}

// ApplyError is an engine refusal of one object of the file.
type ApplyError struct {
	Kind, Name string
	Range      hcl.Range
	Err        error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("%s: %s %q: %v", e.Range, e.Kind, e.Name, e.Err)
}

func (e *ApplyError) Unwrap() error { return e.Err }

// Apply brings the engine in line with f (see the package doc) and returns
// what it did, object by object, up to the first error.
func (f *File) Apply(ctx context.Context, e Engine, log hclog.Logger) ([]Result, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	var out []Result
	record := func(r Result) {
		out = append(out, r)
		log.Info("config file applied", "kind", r.Kind, "name", r.Name, "action", r.Action.String(), "fields", r.Fields)
	}
	for _, in := range f.Interfaces {
		r, err := applyInterface(ctx, e, in)
		if err != nil {
			return out, &ApplyError{"interface", in.Name, in.Range, err}
		}
		record(r)
	}
	for _, in := range f.Secrets {
		r, err := applySecret(ctx, e, in)
		if err != nil {
			return out, &ApplyError{"secret", in.Name, in.Range, err}
		}
		record(r)
	}
	for _, in := range f.Pools {
		r, err := applyPool(ctx, e, in)
		if err != nil {
			return out, &ApplyError{"pool", in.Name, in.Range, err}
		}
		record(r)
	}
	for _, in := range f.Connections {
		r, err := applyConnection(ctx, e, in)
		if err != nil {
			return out, &ApplyError{"connection", in.Name, in.Range, err}
		}
		record(r)
	}
	for _, in := range f.SteeringRules {
		r, err := applySteering(ctx, e, in)
		if err != nil {
			return out, &ApplyError{"steering_rule", in.Name, in.Range, err}
		}
		record(r)
	}
	return out, nil
}

func notFound(err error) bool {
	return err != nil && engine.AsError(err).Code == engine.NotFound
}

func applyInterface(ctx context.Context, e Engine, in Interface) (Result, error) {
	res := Result{Kind: "interface", Name: in.Name}
	var want engine.InterfaceSpec
	if in.Link != nil {
		want.Link = *in.Link
	}
	if in.AccessType != nil {
		want.AccessType = *in.AccessType
	}
	if in.Priority != nil {
		want.Priority = *in.Priority
	}
	if in.Metered != nil {
		want.Metered = *in.Metered
	}
	cur, err := e.GetInterface(ctx, in.Name)
	if notFound(err) {
		if want.Link == "" {
			want.Link = in.Name
		}
		_, err = e.CreateInterface(ctx, in.Name, want, in.AllowMissing)
		res.Action = Created
		return res, err
	}
	if err != nil {
		return res, err
	}
	if in.Link != nil && *in.Link != cur.Link {
		res.Fields = append(res.Fields, engine.FieldLink)
	}
	if in.AccessType != nil && *in.AccessType != cur.AccessType {
		res.Fields = append(res.Fields, engine.FieldAccessType)
	}
	if in.Priority != nil && *in.Priority != cur.Priority {
		res.Fields = append(res.Fields, engine.FieldPriority)
	}
	if in.Metered != nil && *in.Metered != cur.Metered {
		res.Fields = append(res.Fields, engine.FieldMetered)
	}
	return update(res, func() error { _, err := e.UpdateInterface(ctx, in.Name, want, res.Fields); return err })
}

func update(res Result, call func() error) (Result, error) {
	if len(res.Fields) == 0 {
		res.Action = Unchanged
		return res, nil
	}
	res.Action = Updated
	return res, call()
}

func applySecret(ctx context.Context, e Engine, in Secret) (Result, error) {
	res := Result{Kind: "secret", Name: in.Name}
	cur, err := e.GetSecret(ctx, in.Name)
	if notFound(err) {
		_, err = e.CreateSecret(ctx, in.Name, in.Type, in.Value)
		res.Action = Created
		return res, err
	}
	if err != nil {
		return res, err
	}
	if cur.Type != in.Type {
		return res, fmt.Errorf("exists with type %v, the file says %v: delete it through the API to replace it", cur.Type, in.Type)
	}
	res.Action = Unchanged
	return res, nil
}

func applyPool(ctx context.Context, e Engine, in Pool) (Result, error) {
	res := Result{Kind: "pool", Name: in.Name}
	var want engine.PoolSpec
	if in.Ranges != nil {
		want.Ranges = *in.Ranges
	}
	var err error
	if want.DNS, err = parseAddrs(in.DNS); err != nil {
		return res, err
	}
	if want.PCSCF, err = parseAddrs(in.PCSCF); err != nil {
		return res, err
	}
	cur, err := e.GetPool(ctx, in.Name)
	if notFound(err) {
		_, err = e.CreatePool(ctx, in.Name, want)
		res.Action = Created
		return res, err
	}
	if err != nil {
		return res, err
	}
	if in.Ranges != nil && !slices.Equal(want.Ranges, cur.Ranges) {
		res.Fields = append(res.Fields, "ranges")
	}
	if in.DNS != nil && !slices.Equal(want.DNS, cur.DNS) {
		res.Fields = append(res.Fields, "dns_servers")
	}
	if in.PCSCF != nil && !slices.Equal(want.PCSCF, cur.PCSCF) {
		res.Fields = append(res.Fields, "pcscf_servers")
	}
	return update(res, func() error { _, err := e.UpdatePool(ctx, in.Name, want, res.Fields); return err })
}

func parseAddrs(in *[]string) ([]netip.Addr, error) {
	if in == nil {
		return nil, nil
	}
	var out []netip.Addr
	for _, s := range *in {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func applyConnection(ctx context.Context, e Engine, in Connection) (Result, error) {
	res := Result{Kind: "connection", Name: in.Name}
	cur, err := e.GetConnection(ctx, in.Name)
	if notFound(err) {
		_, err = e.CreateConnection(ctx, in.Name, in.Spec)
		res.Action = Created
		return res, err
	}
	if err != nil {
		return res, err
	}
	if cur.Role != in.Spec.Role {
		return res, fmt.Errorf("exists with role %v, the file says %v: the role cannot change, delete the connection through the API first", cur.Role, in.Spec.Role)
	}
	want := in.Spec
	// Children the file lists take the running values of attributes they
	// leave out, so defaults the engine filled in do not count as changes.
	for i := range want.Children {
		ch := &want.Children[i]
		for _, rc := range cur.Children {
			if rc.Name == ch.Name {
				fillChild(ch, rc, in.ChildSet[i])
			}
		}
	}
	w, c := &want, &cur.ConnectionSpec
	for _, f := range []struct {
		name      string
		want, cur any
	}{
		{"local_id", w.LocalID, c.LocalID},
		{"remote_id", w.RemoteID, c.RemoteID},
		{"local_auth", w.LocalAuth, c.LocalAuth},
		{"remote_auth", w.RemoteAuth, c.RemoteAuth},
		{"ike_proposals", w.IKEProposals, c.IKEProposals},
		{"esp_proposals", w.ESPProposals, c.ESPProposals},
		{"remote_addresses", w.RemoteAddrs, c.RemoteAddrs},
		{"local_interfaces", w.LocalInterfaces, c.LocalInterfaces},
		{"remote_port", w.RemotePort, c.RemotePort},
		{"dpd", [2]any{w.DPDInterval, w.DPDTimeout}, [2]any{c.DPDInterval, c.DPDTimeout}},
		{"ike_rekey_time", w.IKERekeyTime, c.IKERekeyTime},
		{"children", w.Children, c.Children},
		{"request_virtual_ip4", w.VirtualIP4, c.VirtualIP4},
		{"request_virtual_ip6", w.VirtualIP6, c.VirtualIP6},
		{"pool", w.Pool, c.Pool},
		{"mobike", w.MOBIKE, c.MOBIKE},
		{"fragmentation", w.Fragmentation, c.Fragmentation},
		{"multipath", w.Multipath, c.Multipath},
	} {
		if in.Set[f.name] && !equal(f.want, f.cur) {
			res.Fields = append(res.Fields, f.name)
		}
	}
	return update(res, func() error { _, err := e.UpdateConnection(ctx, in.Name, want, res.Fields); return err })
}

// equal compares treating nil and empty slices alike.
func equal(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Kind() == reflect.Slice && vb.Kind() == reflect.Slice && va.Len() == 0 && vb.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func fillChild(ch *engine.ChildSpec, cur engine.ChildSpec, set map[string]bool) {
	if !set["local_ts"] {
		ch.LocalTS = cur.LocalTS
	}
	if !set["remote_ts"] {
		ch.RemoteTS = cur.RemoteTS
	}
	if !set["esp_proposals"] {
		ch.ESPProposals = cur.ESPProposals
	}
	if !set["mode"] {
		ch.Mode = cur.Mode
	}
	if !set["start_action"] {
		ch.StartAction = cur.StartAction
	}
	if !set["rekey_time"] {
		ch.RekeyTime = cur.RekeyTime
	}
	if !set["rekey_bytes"] {
		ch.RekeyBytes = cur.RekeyBytes
	}
	if !set["rekey_packets"] {
		ch.RekeyPackets = cur.RekeyPackets
	}
}
