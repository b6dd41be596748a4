package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/mifsec/mifsec/client"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// connectionFlags are the flags of `connection add` and `update`.
type connectionFlags struct {
	fromJSON string

	role              mifsecv1.Role
	localID, remoteID string

	psk, remotePSK          string
	certFile, keySecret     string
	remoteCAFile            string
	ikeProposals            []string
	espProposals            []string
	remotes, interfaces     []string
	remotePort              uint32
	dpdInterval, dpdTimeout time.Duration
	ikeRekey                time.Duration
	virtualIP4, virtualIP6  bool
	pool                    string
	mobike, fragmentation   bool
	multipath               bool
	children                []string
}

// connectionFields maps flags to the top-level Connection field they set
// (update_mask paths). --psk also sets remote_auth unless a remote flag
// does; see applyAuth.
var connectionFields = []struct{ flag, path string }{
	{"local-id", "local_id"},
	{"remote-id", "remote_id"},
	{"psk", "local_auth"},
	{"cert-file", "local_auth"},
	{"key-secret", "local_auth"},
	{"remote-psk", "remote_auth"},
	{"remote-ca-file", "remote_auth"},
	{"ike-proposal", "ike_proposals"},
	{"esp-proposal", "esp_proposals"},
	{"remote", "remote_addresses"},
	{"interface", "local_interfaces"},
	{"remote-port", "remote_port"},
	{"dpd-interval", "dpd"},
	{"dpd-timeout", "dpd"},
	{"ike-rekey", "ike_rekey_time"},
	{"child", "children"},
	{"virtual-ip4", "request_virtual_ip4"},
	{"virtual-ip6", "request_virtual_ip6"},
	{"pool", "pool"},
	{"mobike", "mobike"},
	{"fragmentation", "fragmentation"},
	{"multipath", "multipath"},
}

// outputOnlyConnectionFields are dropped from --from-json input (a file
// saved by `connection get --json` carries them).
var outputOnlyConnectionFields = []protoreflect.Name{"name", "state", "ike_sas", "create_time", "update_time"}

const childSyntax = `--child NAME[,KEY=VALUE...], repeatable, one per Child SA template.
Keys (local, remote and esp may repeat; values hold no commas):
  local=TS          local traffic selector: CIDR, optionally PREFIX[PROTO/PORT]
                    as strongSwan writes it (10.0.0.0/8[tcp/443]); IPv6 is fine
  remote=TS         remote traffic selector, same syntax
  esp=PROPOSAL      ESP proposal, strongSwan syntax (aes128gcm16-x25519)
  mode=tunnel|transport
  start=none|start|trap
  rekey=DURATION    rekey time (1h, 30m)
  rekey-bytes=N     rekey after N bytes
  rekey-packets=N   rekey after N packets
Example: --child net,local=10.0.0.0/8,remote=0.0.0.0/0,remote=::/0,start=start`

func (v *connectionFlags) register(cmd *cobra.Command, a *app, create bool) {
	fs := cmd.Flags()
	fs.StringVar(&v.fromJSON, "from-json", "", "start from a protojson Connection in `FILE` (- for stdin); flags override its fields")
	if create {
		fs.Var(newEnumFlag(&v.role), "role", "`ROLE` of this node: "+strings.Join(enumChoices(mifsecv1.Role(0).Descriptor()), "|"))
		_ = cmd.RegisterFlagCompletionFunc("role", enumFlagCompletion[mifsecv1.Role]())
	}
	fs.StringVar(&v.localID, "local-id", "", "local `IDENTITY`, strongSwan syntax (@ue.example, user@example, 192.0.2.1, \"CN=ue\")")
	fs.StringVar(&v.remoteID, "remote-id", "", "remote `IDENTITY`; %any accepts any authenticated peer")
	fs.StringVar(&v.psk, "psk", "", "authenticate with the PSK `SECRET` (an id or secrets/ID); the peer too unless --remote-psk or --remote-ca-file")
	fs.StringVar(&v.remotePSK, "remote-psk", "", "the peer authenticates with this PSK `SECRET`")
	fs.StringVar(&v.certFile, "cert-file", "", "authenticate with the certificate chain in `PEM` file, leaf first (- for stdin)")
	fs.StringVar(&v.keySecret, "key-secret", "", "private key `SECRET` of --cert-file")
	fs.StringVar(&v.remoteCAFile, "remote-ca-file", "", "the peer authenticates with a certificate from these CAs (`PEM` file, - for stdin)")
	fs.StringSliceVar(&v.ikeProposals, "ike-proposal", nil, "IKE `PROPOSAL`s, strongSwan syntax, repeatable or comma-separated")
	fs.StringSliceVar(&v.espProposals, "esp-proposal", nil, "ESP `PROPOSAL`s for children that name none")
	fs.StringSliceVar(&v.remotes, "remote", nil, "peer `ADDRESS`es, tried in order (responder: none = any)")
	fs.StringSliceVar(&v.interfaces, "interface", nil, "interface `ID`s the connection may use (none = any)")
	fs.Uint32Var(&v.remotePort, "remote-port", 0, "remote IKE `PORT` (0: 500)")
	fs.DurationVar(&v.dpdInterval, "dpd-interval", 0, "liveness check after this long without inbound traffic (0: off)")
	fs.DurationVar(&v.dpdTimeout, "dpd-timeout", 0, "peer is dead after this long without an answer (0: retransmission schedule)")
	fs.DurationVar(&v.ikeRekey, "ike-rekey", 0, "rekey the IKE SA after this long (0: 4h)")
	fs.BoolVar(&v.virtualIP4, "virtual-ip4", false, "initiator: request an inner IPv4 address")
	fs.BoolVar(&v.virtualIP6, "virtual-ip6", false, "initiator: request an inner IPv6 address")
	fs.StringVar(&v.pool, "pool", "", "responder: lease inner addresses from `POOL`")
	fs.BoolVar(&v.mobike, "mobike", true, "offer MOBIKE (RFC 4555)")
	fs.BoolVar(&v.fragmentation, "fragmentation", true, "offer IKE fragmentation (RFC 7383)")
	fs.BoolVar(&v.multipath, "multipath", false, "initiator: one IKE SA per usable path (interface × remote address); steering rules pick the path per flow")
	fs.StringArrayVar(&v.children, "child", nil, "Child SA `SPEC`: NAME[,local=TS][,remote=TS][,esp=P][,mode=M][,start=S][,rekey=D] (see --help)")

	_ = cmd.RegisterFlagCompletionFunc("psk", a.completeSecretIDs(false))
	_ = cmd.RegisterFlagCompletionFunc("remote-psk", a.completeSecretIDs(false))
	_ = cmd.RegisterFlagCompletionFunc("key-secret", a.completeSecretIDs(false))
	_ = cmd.RegisterFlagCompletionFunc("pool", a.completePoolIDs(false))
	_ = cmd.RegisterFlagCompletionFunc("interface", a.completeInterfaceIDs)
	cmd.MarkFlagsMutuallyExclusive("psk", "cert-file")
	cmd.MarkFlagsMutuallyExclusive("remote-psk", "remote-ca-file")
	cmd.MarkFlagsRequiredTogether("cert-file", "key-secret")
}

// connectionBuild is what the flags make: the connection and the
// update_mask paths they set.
type connectionBuild struct {
	conn  *mifsecv1.Connection
	paths []string
}

func (b *connectionBuild) touch(path string) {
	for _, p := range b.paths {
		if p == path {
			return
		}
	}
	b.paths = append(b.paths, path)
}

// build reads --from-json (if any) and applies every flag set on fs.
// update excludes role and output-only fields from the JSON paths.
func (v *connectionFlags) build(fs *pflag.FlagSet, stdin io.Reader) (*connectionBuild, error) {
	n := 0
	for _, f := range []string{v.fromJSON, v.certFile, v.remoteCAFile} {
		if f == "-" {
			n++
		}
	}
	if n > 1 {
		return nil, asUsage(errStdinTwice)
	}
	b := &connectionBuild{conn: &mifsecv1.Connection{}}
	if v.fromJSON != "" {
		raw, err := readInput(stdin, v.fromJSON)
		if err != nil {
			return nil, err
		}
		if err := protojson.Unmarshal(raw, b.conn); err != nil {
			return nil, asUsage(fmt.Errorf("--from-json %s: not a Connection: %w", inputName(v.fromJSON), err))
		}
		m := b.conn.ProtoReflect()
		for _, name := range outputOnlyConnectionFields {
			m.Clear(m.Descriptor().Fields().ByName(name))
		}
		m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			b.touch(string(fd.Name()))
			return true
		})
	}
	c := b.conn
	set := func(flag string) bool {
		if !fs.Changed(flag) {
			return false
		}
		for _, f := range connectionFields {
			if f.flag == flag {
				b.touch(f.path)
			}
		}
		return true
	}
	if fs.Lookup("role") != nil && set("role") {
		c.Role = v.role
	}
	if set("local-id") {
		c.LocalId = v.localID
	}
	if set("remote-id") {
		c.RemoteId = v.remoteID
	}
	if err := v.applyAuth(b, set, stdin); err != nil {
		return nil, err
	}
	if set("ike-proposal") {
		c.IkeProposals = v.ikeProposals
	}
	if set("esp-proposal") {
		c.EspProposals = v.espProposals
	}
	if set("remote") {
		c.RemoteAddresses = v.remotes
	}
	if set("interface") {
		c.LocalInterfaces = nil
		for _, i := range v.interfaces {
			name, err := client.Interfaces.Name(i)
			if err != nil {
				return nil, err
			}
			c.LocalInterfaces = append(c.LocalInterfaces, name)
		}
	}
	if set("remote-port") {
		if v.remotePort > 65535 {
			return nil, asUsage(fmt.Errorf("--remote-port %d: at most 65535", v.remotePort))
		}
		c.RemotePort = v.remotePort
	}
	interval, timeout := set("dpd-interval"), set("dpd-timeout")
	if interval || timeout {
		if c.Dpd == nil {
			c.Dpd = &mifsecv1.Dpd{}
		}
		if interval {
			d, err := durationFlag("dpd-interval", v.dpdInterval)
			if err != nil {
				return nil, err
			}
			c.Dpd.Interval = d
		}
		if timeout {
			d, err := durationFlag("dpd-timeout", v.dpdTimeout)
			if err != nil {
				return nil, err
			}
			c.Dpd.Timeout = d
		}
	}
	if set("ike-rekey") {
		d, err := durationFlag("ike-rekey", v.ikeRekey)
		if err != nil {
			return nil, err
		}
		c.IkeRekeyTime = d
	}
	if set("child") {
		c.Children = nil
		for _, s := range v.children {
			ch, err := parseChild(s)
			if err != nil {
				return nil, asUsage(fmt.Errorf("--child %q: %w", s, err))
			}
			c.Children = append(c.Children, ch)
		}
	}
	if set("virtual-ip4") {
		c.RequestVirtualIp4 = v.virtualIP4
	}
	if set("virtual-ip6") {
		c.RequestVirtualIp6 = v.virtualIP6
	}
	if set("pool") {
		c.Pool = ""
		if v.pool != "" { // --pool= clears it on update
			name, err := client.Pools.Name(v.pool)
			if err != nil {
				return nil, err
			}
			c.Pool = name
		}
	}
	if set("mobike") {
		c.Mobike = proto.Bool(v.mobike)
	}
	if set("fragmentation") {
		c.Fragmentation = proto.Bool(v.fragmentation)
	}
	if set("multipath") {
		c.Multipath = v.multipath
	}
	return b, nil
}

// applyAuth sets local_auth and remote_auth from the authentication flags.
// --psk alone means both sides use that PSK (the usual gateway setup).
func (v *connectionFlags) applyAuth(b *connectionBuild, set func(string) bool, stdin io.Reader) error {
	c := b.conn
	remoteGiven := set("remote-psk") || set("remote-ca-file")
	if set("psk") {
		a, err := pskAuth(v.psk, "--psk")
		if err != nil {
			return err
		}
		c.LocalAuth = a
		if !remoteGiven {
			c.RemoteAuth = proto.Clone(a).(*mifsecv1.Authentication)
			b.touch("remote_auth")
		}
	}
	if set("cert-file") {
		set("key-secret")
		chain, err := readPEMCerts(stdin, v.certFile, "--cert-file")
		if err != nil {
			return err
		}
		key, err := client.Secrets.Name(v.keySecret)
		if err != nil {
			return err
		}
		c.LocalAuth = &mifsecv1.Authentication{Method: &mifsecv1.Authentication_Certificate{
			Certificate: &mifsecv1.CertificateAuth{CertificatePem: chain, KeySecret: key}}}
	}
	if set("remote-psk") {
		a, err := pskAuth(v.remotePSK, "--remote-psk")
		if err != nil {
			return err
		}
		c.RemoteAuth = a
	}
	if set("remote-ca-file") {
		ca, err := readPEMCerts(stdin, v.remoteCAFile, "--remote-ca-file")
		if err != nil {
			return err
		}
		c.RemoteAuth = &mifsecv1.Authentication{Method: &mifsecv1.Authentication_Certificate{
			Certificate: &mifsecv1.CertificateAuth{CaPem: ca}}}
	}
	return nil
}

func pskAuth(secret, flag string) (*mifsecv1.Authentication, error) {
	if secret == "" {
		return nil, asUsage(fmt.Errorf("%s needs a secret id", flag))
	}
	name, err := client.Secrets.Name(secret)
	if err != nil {
		return nil, err
	}
	return &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: name}}, nil
}

// readPEMCerts reads a PEM file and checks that it holds certificates only
// (a private key pasted by mistake must not travel to the daemon in the
// clear field).
func readPEMCerts(stdin io.Reader, path, flag string) (string, error) {
	raw, err := readInput(stdin, path)
	if err != nil {
		return "", err
	}
	rest, n := raw, 0
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			clear(raw)
			return "", asUsage(fmt.Errorf("%s %s: PEM block %q is not a CERTIFICATE (keys go into secrets)", flag, inputName(path), blk.Type))
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return "", asUsage(fmt.Errorf("%s %s: certificate %d: %w", flag, inputName(path), n+1, err))
		}
		n++
	}
	if n == 0 {
		return "", asUsage(fmt.Errorf("%s %s: no PEM certificate found", flag, inputName(path)))
	}
	return string(raw), nil
}

func durationFlag(flag string, d time.Duration) (*durationpb.Duration, error) {
	if d < 0 {
		return nil, asUsage(fmt.Errorf("--%s %v: must not be negative", flag, d))
	}
	return durationpb.New(d), nil
}

// parseChild parses one --child SPEC (see childSyntax).
func parseChild(spec string) (*mifsecv1.Child, error) {
	parts := strings.Split(spec, ",")
	ch := &mifsecv1.Child{Name: strings.TrimPrefix(parts[0], "name=")}
	if ch.Name == "" || strings.Contains(ch.Name, "=") {
		return nil, errors.New("starts with the child's NAME")
	}
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		key, val, ok := strings.Cut(p, "=")
		if !ok || val == "" {
			return nil, fmt.Errorf("%q: want KEY=VALUE", p)
		}
		switch key {
		case "local", "remote", "esp":
		default:
			if seen[key] {
				return nil, fmt.Errorf("%s given twice", key)
			}
			seen[key] = true
		}
		var err error
		switch key {
		case "local":
			ch.LocalTs = append(ch.LocalTs, val)
		case "remote":
			ch.RemoteTs = append(ch.RemoteTs, val)
		case "esp":
			ch.EspProposals = append(ch.EspProposals, val)
		case "mode":
			ch.Mode, err = parseEnum[mifsecv1.IpsecMode](val)
		case "start":
			ch.StartAction, err = parseEnum[mifsecv1.StartAction](val)
		case "rekey":
			var d time.Duration
			if d, err = time.ParseDuration(val); err == nil && d < 0 {
				err = errors.New("negative")
			}
			ch.RekeyTime = durationpb.New(d)
		case "rekey-bytes":
			ch.RekeyBytes, err = strconv.ParseUint(val, 10, 64)
		case "rekey-packets":
			ch.RekeyPackets, err = strconv.ParseUint(val, 10, 64)
		default:
			return nil, fmt.Errorf("unknown key %q (want local, remote, esp, mode, start, rekey, rekey-bytes, rekey-packets)", key)
		}
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", key, val, err)
		}
	}
	return ch, nil
}

// buildConnectionCreateRequest turns `connection add ID` into a request.
func buildConnectionCreateRequest(idArg string, fs *pflag.FlagSet, v *connectionFlags, stdin io.Reader) (*mifsecv1.CreateConnectionRequest, error) {
	id, err := client.Connections.ID(idArg)
	if err != nil {
		return nil, err
	}
	b, err := v.build(fs, stdin)
	if err != nil {
		return nil, err
	}
	c := b.conn
	switch {
	case c.GetRole() == mifsecv1.Role_ROLE_UNSPECIFIED:
		return nil, asUsage(errors.New("--role is required (initiator or responder)"))
	case c.GetLocalAuth().GetMethod() == nil:
		return nil, asUsage(errors.New("set how this side authenticates: --psk SECRET or --cert-file PEM --key-secret SECRET"))
	case c.GetRemoteAuth().GetMethod() == nil:
		return nil, asUsage(errors.New("set how the peer authenticates: --remote-psk SECRET or --remote-ca-file PEM"))
	}
	return &mifsecv1.CreateConnectionRequest{ConnectionId: id, Connection: c}, nil
}

// buildConnectionUpdateRequest turns `connection update ID` into a request
// whose mask names the top-level fields the flags (and --from-json) set.
func buildConnectionUpdateRequest(idArg string, fs *pflag.FlagSet, v *connectionFlags, stdin io.Reader) (*mifsecv1.UpdateConnectionRequest, error) {
	name, err := client.Connections.Name(idArg)
	if err != nil {
		return nil, err
	}
	b, err := v.build(fs, stdin)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, p := range b.paths {
		if p != "role" {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return nil, asUsage(errors.New("nothing to update: set a flag or --from-json"))
	}
	c := b.conn
	c.Name, c.Role = name, mifsecv1.Role_ROLE_UNSPECIFIED
	mask, err := fieldmaskpb.New(c, paths...)
	if err != nil {
		return nil, fmt.Errorf("update mask: %w", err)
	}
	return &mifsecv1.UpdateConnectionRequest{Connection: c, UpdateMask: mask}, nil
}

// partialDPD reports whether an update sets only one of the dpd durations:
// dpd is one field of the mask, so the other must be read from the daemon
// (mergeDPD) or it would be reset.
func partialDPD(fs *pflag.FlagSet, v *connectionFlags) bool {
	return fs.Changed("dpd-interval") != fs.Changed("dpd-timeout") && v.fromJSON == ""
}

// mergeDPD copies the duration not given on the command line from cur.
func mergeDPD(req *mifsecv1.UpdateConnectionRequest, fs *pflag.FlagSet, cur *mifsecv1.Connection) {
	d := req.GetConnection().GetDpd()
	if d == nil {
		return
	}
	if !fs.Changed("dpd-interval") {
		d.Interval = cur.GetDpd().GetInterval()
	}
	if !fs.Changed("dpd-timeout") {
		d.Timeout = cur.GetDpd().GetTimeout()
	}
}
