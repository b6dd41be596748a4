package strongswan

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mifsec/mifsec/test/strongswan/vici"
)

// Opt is a yes/no setting that may be left at strongSwan's default.
type Opt uint8

const (
	Default Opt = iota // leave the key out: strongSwan's default applies
	Yes
	No
)

func (o Opt) String() string {
	switch o {
	case Yes:
		return "yes"
	case No:
		return "no"
	}
	return "default"
}

// DefaultPlugins is the plugin list of every charon the harness starts.
// kernel-libipsec must come before kernel-netlink: the first plugin that
// registers the kernel-ipsec feature wins, and without kernel ESP the
// netlink one fails to install SAs ("Function not implemented");
// kernel-netlink is still needed for addresses, routes and roaming events.
var DefaultPlugins = []string{
	"random", "nonce", "openssl", "aes", "sha1", "sha2", "hmac", "gcm",
	"curve25519", "kdf", "pem", "pkcs1", "pkcs8", "x509", "pubkey",
	"revocation", "constraints",
	"kernel-libipsec", "kernel-netlink", "socket-default", "vici",
}

// DefaultLog is the filelog level per subsystem (-1 silent .. 4 keys);
// Config.Log overrides single entries. Level 4 for ike writes IKE keys to
// the log: for decrypting captures in a lab, never by default.
var DefaultLog = map[string]int{
	"default": 1, "ike": 2, "knl": 2, "cfg": 2, "net": 1, "esp": 1, "chd": 1,
}

// Config describes one charon instance: its strongswan.conf and its
// swanctl.conf.
type Config struct {
	Name    string         // label for the directory and logs; "charon" when empty
	Plugins []string       // DefaultPlugins when nil
	Log     map[string]int // filelog levels merged over DefaultLog

	InstallVirtualIP  Opt           // install_virtual_ip (strongSwan default yes)
	MakeBeforeBreak   bool          // make_before_break for reauthentication
	RetransmitTimeout time.Duration // retransmit_timeout; 4 s when 0
	RetransmitBase    float64       // retransmit_base; 1.8 when 0
	RetransmitTries   int           // retransmit_tries; 5 when 0
	Charon            []string      // extra raw lines inside charon { }

	Connections []Connection
	Pools       []Pool
	Secrets     []PSK
	CAs         []*CA   // written to swanctl/x509ca
	Certs       []*Cert // written to swanctl/x509 and their keys to swanctl/ecdsa

	StartTimeout time.Duration // for the vici socket to answer; 10 s when 0
}

// Connection is an IKE connection of swanctl.conf (swanctl.conf(5)
// "connections.<conn>"). Zero values leave strongSwan's defaults. Durations
// are written in seconds; a negative duration writes 0 (disabled).
type Connection struct {
	Name          string
	LocalAddrs    []string // %any when empty
	RemoteAddrs   []string
	LocalPort     int
	RemotePort    int
	Proposals     []string // IKE proposals, e.g. aes256gcm16-prfsha256-x25519
	VIPs          []string // virtual IPs to request (0.0.0.0 = any IPv4)
	Pools         []string // pools to assign from, as responder
	Mobike        Opt
	Encap         bool // force UDP encapsulation (fake NAT-D)
	Fragmentation string
	SendCertReq   Opt
	Unique        string // no, never, keep or replace
	Keyingtries   int
	DPDDelay      time.Duration
	DPDTimeout    time.Duration
	RekeyTime     time.Duration
	ReauthTime    time.Duration
	OverTime      time.Duration
	Local         Auth
	Remote        Auth
	Children      []Child
	Extra         map[string]string // more keys of the connection, verbatim
}

// Auth is one authentication round (local or remote).
type Auth struct {
	Auth    string   // psk or pubkey (swanctl: auth)
	ID      string   // IKE identity: FQDN, user@fqdn, an address or a DN
	Certs   []string // file names in swanctl/x509 (local: own certificate)
	CACerts []string // file names in swanctl/x509ca to trust for this round
}

// Child is a CHILD_SA config (swanctl.conf(5) "children.<child>").
type Child struct {
	Name         string
	LocalTS      []string // dynamic when empty
	RemoteTS     []string // dynamic when empty
	ESPProposals []string // e.g. aes256gcm16-x25519 (PFS on rekey)
	Mode         string   // tunnel when empty
	StartAction  string   // none, trap or start
	DPDAction    string   // clear, trap or restart
	CloseAction  string
	RekeyTime    time.Duration
	LifeTime     time.Duration
	RekeyBytes   uint64
	RekeyPackets uint64
}

// Pool is a virtual IP pool (swanctl.conf(5) "pools.<name>").
type Pool struct {
	Name  string
	Addrs string // CIDR or range, e.g. 10.45.0.0/24
	DNS   []string
}

// PSK is a pre-shared key for the identities in IDs (none = any).
type PSK struct {
	Name   string
	IDs    []string
	Secret vici.Secret
}

func (p PSK) String() string {
	return fmt.Sprintf("PSK %s for %v: [redacted]", p.Name, p.IDs)
}

func seconds(d time.Duration) string {
	if d < 0 {
		return "0"
	}
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10) + "s"
}

func setDur(m *vici.Message, key string, d time.Duration) {
	if d != 0 {
		m.Set(key, seconds(d))
	}
}

func setOpt(m *vici.Message, key string, o Opt) {
	if o != Default {
		m.Set(key, o.String())
	}
}

func setList(m *vici.Message, key string, l []string) {
	if len(l) > 0 {
		m.SetList(key, l...)
	}
}

// CertData maps a certificate file name of an Auth to what goes into the
// message: the name itself for swanctl.conf, the PEM data for vici.
type CertData func(dir, file string) (string, error)

// Message renders the connection as the section swanctl.conf and vici
// load-conn share; certs turns certificate file names into values.
func (c Connection) Message(certs CertData) (*vici.Message, error) {
	if c.Name == "" {
		return nil, fmt.Errorf("strongswan: connection without a name")
	}
	m := vici.NewMessage().Set("version", "2")
	setList(m, "local_addrs", c.LocalAddrs)
	setList(m, "remote_addrs", c.RemoteAddrs)
	if c.LocalPort != 0 {
		m.Set("local_port", strconv.Itoa(c.LocalPort))
	}
	if c.RemotePort != 0 {
		m.Set("remote_port", strconv.Itoa(c.RemotePort))
	}
	setList(m, "proposals", c.Proposals)
	setList(m, "vips", c.VIPs)
	setList(m, "pools", c.Pools)
	setOpt(m, "mobike", c.Mobike)
	if c.Encap {
		m.Set("encap", "yes")
	}
	if c.Fragmentation != "" {
		m.Set("fragmentation", c.Fragmentation)
	}
	setOpt(m, "send_certreq", c.SendCertReq)
	if c.Unique != "" {
		m.Set("unique", c.Unique)
	}
	if c.Keyingtries != 0 {
		m.Set("keyingtries", strconv.Itoa(c.Keyingtries))
	}
	setDur(m, "dpd_delay", c.DPDDelay)
	setDur(m, "dpd_timeout", c.DPDTimeout)
	setDur(m, "rekey_time", c.RekeyTime)
	setDur(m, "reauth_time", c.ReauthTime)
	setDur(m, "over_time", c.OverTime)
	for _, k := range slices.Sorted(maps.Keys(c.Extra)) {
		m.Set(k, c.Extra[k])
	}
	for _, side := range []struct {
		key string
		a   Auth
	}{{"local", c.Local}, {"remote", c.Remote}} {
		s, err := side.a.message(certs)
		if err != nil {
			return nil, fmt.Errorf("strongswan: connection %s %s: %w", c.Name, side.key, err)
		}
		m.SetSection(side.key, s)
	}
	children := vici.NewMessage()
	for _, ch := range c.Children {
		if ch.Name == "" {
			return nil, fmt.Errorf("strongswan: connection %s: child without a name", c.Name)
		}
		children.SetSection(ch.Name, ch.message())
	}
	m.SetSection("children", children)
	return m, nil
}

func (a Auth) message(certs CertData) (*vici.Message, error) {
	m := vici.NewMessage()
	if a.Auth != "" {
		m.Set("auth", a.Auth)
	}
	if a.ID != "" {
		m.Set("id", a.ID)
	}
	for _, l := range []struct {
		key, dir string
		files    []string
	}{{"certs", "x509", a.Certs}, {"cacerts", "x509ca", a.CACerts}} {
		var vals []string
		for _, f := range l.files {
			v, err := certs(l.dir, f)
			if err != nil {
				return nil, err
			}
			vals = append(vals, v)
		}
		setList(m, l.key, vals)
	}
	return m, nil
}

func (ch Child) message() *vici.Message {
	m := vici.NewMessage()
	setList(m, "local_ts", ch.LocalTS)
	setList(m, "remote_ts", ch.RemoteTS)
	setList(m, "esp_proposals", ch.ESPProposals)
	if ch.Mode != "" {
		m.Set("mode", ch.Mode)
	}
	for _, kv := range [][2]string{{"start_action", ch.StartAction}, {"dpd_action", ch.DPDAction}, {"close_action", ch.CloseAction}} {
		if kv[1] != "" {
			m.Set(kv[0], kv[1])
		}
	}
	setDur(m, "rekey_time", ch.RekeyTime)
	setDur(m, "life_time", ch.LifeTime)
	if ch.RekeyBytes != 0 {
		m.Set("rekey_bytes", strconv.FormatUint(ch.RekeyBytes, 10))
	}
	if ch.RekeyPackets != 0 {
		m.Set("rekey_packets", strconv.FormatUint(ch.RekeyPackets, 10))
	}
	return m
}

func (p Pool) message() *vici.Message {
	m := vici.NewMessage().Set("addrs", p.Addrs)
	setList(m, "dns", p.DNS)
	return m
}

// fileCerts keeps certificate file names (swanctl resolves them).
func fileCerts(_, file string) (string, error) { return file, nil }

// SwanctlConf renders the swanctl.conf of cfg.
func SwanctlConf(cfg Config) (string, error) {
	root := vici.NewMessage()
	conns := vici.NewMessage()
	for _, c := range cfg.Connections {
		m, err := c.Message(fileCerts)
		if err != nil {
			return "", err
		}
		conns.SetSection(c.Name, m)
	}
	root.SetSection("connections", conns)
	pools := vici.NewMessage()
	for _, p := range cfg.Pools {
		if p.Name == "" || p.Addrs == "" {
			return "", fmt.Errorf("strongswan: pool %q needs a name and addrs", p.Name)
		}
		pools.SetSection(p.Name, p.message())
	}
	root.SetSection("pools", pools)
	secrets := vici.NewMessage()
	for i, s := range cfg.Secrets {
		name := s.Name
		if name == "" {
			name = strconv.Itoa(i + 1)
		}
		m := vici.NewMessage()
		for j, id := range s.IDs {
			m.Set("id-"+strconv.Itoa(j+1), id)
		}
		// 0x: hex, so no quoting issue whatever the bytes (swanctl.conf(5)).
		m.Set("secret", "0x"+hex.EncodeToString(s.Secret))
		secrets.SetSection("ike-"+name, m)
	}
	root.SetSection("secrets", secrets)
	var b strings.Builder
	b.WriteString("# generated by github.com/mifsec/mifsec/test/strongswan\n")
	writeSettings(&b, root, 0)
	return b.String(), nil
}

// writeSettings writes a tree in strongswan.conf(5) syntax; lists become
// comma separated values, which is how swanctl reads them.
func writeSettings(b *strings.Builder, m *vici.Message, depth int) {
	ind := strings.Repeat("\t", depth)
	for _, k := range m.Keys() {
		switch v := m.Value(k).(type) {
		case string:
			fmt.Fprintf(b, "%s%s = %s\n", ind, k, quote(v))
		case []string:
			fmt.Fprintf(b, "%s%s = %s\n", ind, k, quote(strings.Join(v, ", ")))
		case *vici.Message:
			fmt.Fprintf(b, "%s%s {\n", ind, k)
			writeSettings(b, v, depth+1)
			fmt.Fprintf(b, "%s}\n", ind)
		}
	}
}

// quote returns v as is when it is a plain token, else double-quoted with
// the escapes the settings parser knows.
func quote(v string) string {
	plain := v != ""
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".:/@%_-+*, ", r)) {
			plain = false
			break
		}
	}
	if plain && strings.TrimSpace(v) == v {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(v) + `"`
}

// StrongswanConf renders the strongswan.conf of an instance whose files
// live in dir.
func StrongswanConf(cfg Config, dir string) string {
	plugins := cfg.Plugins
	if plugins == nil {
		plugins = DefaultPlugins
	}
	levels := maps.Clone(DefaultLog)
	maps.Copy(levels, cfg.Log)
	var b strings.Builder
	w := func(depth int, format string, args ...any) {
		b.WriteString(strings.Repeat("\t", depth))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	w(0, "# generated by github.com/mifsec/mifsec/test/strongswan for %s", cfg.Name)
	w(0, "charon {")
	w(1, "# explicit ordered list, no load_modular: kernel-libipsec before kernel-netlink")
	w(1, "load = %s", strings.Join(plugins, " "))
	w(1, "port = 500")
	w(1, "port_nat_t = 4500")
	w(1, "# routes into table 220 (rule priority 220), pointing at the libipsec TUN device")
	w(1, "install_routes = yes")
	w(1, "routing_table = 220")
	w(1, "routing_table_prio = 220")
	if cfg.InstallVirtualIP != Default {
		w(1, "install_virtual_ip = %s", cfg.InstallVirtualIP)
	} else {
		w(1, "install_virtual_ip = yes")
	}
	if cfg.MakeBeforeBreak {
		w(1, "make_before_break = yes")
	} else {
		w(1, "make_before_break = no")
	}
	if cfg.RetransmitTimeout > 0 {
		w(1, "retransmit_timeout = %s", strconv.FormatFloat(cfg.RetransmitTimeout.Seconds(), 'f', -1, 64))
	}
	if cfg.RetransmitBase > 0 {
		w(1, "retransmit_base = %s", strconv.FormatFloat(cfg.RetransmitBase, 'f', -1, 64))
	}
	if cfg.RetransmitTries > 0 {
		w(1, "retransmit_tries = %d", cfg.RetransmitTries)
	}
	w(1, "plugins {")
	w(2, "vici {")
	w(3, "socket = unix://%s", socketPath(dir))
	w(2, "}")
	w(2, "kernel-libipsec {")
	w(3, "allow_peer_ts = no")
	w(2, "}")
	w(1, "}")
	w(1, "filelog {")
	w(2, "main {")
	w(3, "path = %s", logPath(dir))
	w(3, "time_format = %%F %%T")
	w(3, "time_add_ms = yes")
	w(3, "ike_name = yes")
	w(3, "append = no")
	w(3, "flush_line = yes")
	for _, k := range slices.Sorted(maps.Keys(levels)) {
		w(3, "%s = %d", k, levels[k])
	}
	w(2, "}")
	w(1, "}")
	w(1, "syslog {")
	w(2, "daemon {")
	w(3, "default = -1")
	w(2, "}")
	w(2, "auth {")
	w(3, "default = -1")
	w(2, "}")
	w(1, "}")
	for _, l := range cfg.Charon {
		w(1, "%s", l)
	}
	w(0, "}")
	return b.String()
}
