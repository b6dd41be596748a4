package interop

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
	"github.com/mifsec/mifsec/test/strongswan"
	"github.com/mifsec/mifsec/test/topo"
)

// charon at ike level 4 dumps every IKE and Child SA key:
// "<ue|1> Sk_ei secret => 36 bytes @ 0x..." then "<ue|1>    0: 8F 1E ..." lines.
var (
	keyLine = regexp.MustCompile(`(Sk_\w+|encryption key|integrity key|[Ss]hared [Dd]iffie Hellman secret|SKEYSEED)[^=]*=> (\d+) bytes`)
	hexLine = regexp.MustCompile(`^\S+ \S+ \d+\[\w+\] <[^>]*>\s+\d+: ((?:[0-9A-F]{2} ){1,16})`)
)

// keysFromCharonLog collects the keys charon logged, each as raw bytes.
func keysFromCharonLog(log string) [][]byte {
	var keys [][]byte
	sc := bufio.NewScanner(strings.NewReader(log))
	var cur []byte
	collecting := false
	for sc.Scan() {
		l := sc.Text()
		if keyLine.MatchString(l) {
			if len(cur) > 0 {
				keys = append(keys, cur)
			}
			cur, collecting = nil, true
			continue
		}
		if m := hexLine.FindStringSubmatch(l); collecting && m != nil {
			b, err := hex.DecodeString(strings.ReplaceAll(m[1], " ", ""))
			if err == nil {
				cur = append(cur, b...)
			}
			continue
		}
		if collecting && len(cur) > 0 {
			keys = append(keys, cur)
		}
		cur, collecting = nil, false
	}
	if len(cur) > 0 {
		keys = append(keys, cur)
	}
	return keys
}

// A full interop run (establish, traffic, Child and IKE rekey, delete) with
// mifsecd logging at debug level (test/daemon): neither the PSK nor any IKE/ESP key that
// strongSwan derived for the same SAs appears in mifsecd's log, in hex
// (either case) or base64.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	tp := topo.Build(t)
	gw := swGateway(t, tp, func(c *strongswan.Config) { c.Log = map[string]int{"ike": 4, "chd": 4} })
	d := mifsecUE(t, tp, nil)
	ctx := ctxT(t)
	if _, err := d.Client.Connections.InitiateConnection(ctx, &mifsecv1.InitiateConnectionRequest{Name: "connections/gw"}); err != nil {
		t.Fatal(err)
	}
	sa := ikeSA(t, d, "gw")
	if _, err := tp.UE.Ping(ctx, topo.PingOptions{Src: vip(t, sa), Dst: topo.SRV, Count: 5, Rate: 50}); err != nil {
		t.Fatal(err)
	}
	kids := childSAs(t, d, sa.Name)
	if _, err := d.Client.SAs.RekeyChildSa(ctx, &mifsecv1.RekeyChildSaRequest{Name: kids[0].Name}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.SAs.RekeyIkeSa(ctx, &mifsecv1.RekeyIkeSaRequest{Name: sa.Name}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.Connections.TerminateConnection(ctx, &mifsecv1.TerminateConnectionRequest{Name: "connections/gw"}); err != nil {
		t.Fatal(err)
	}
	keys := keysFromCharonLog(gw.Log())
	if len(keys) < 8 {
		t.Fatalf("found only %d keys in charon's log: the parser no longer matches its format", len(keys))
	}
	mlog := d.Log()
	if !strings.Contains(mlog, "[TRACE]") && !strings.Contains(mlog, "[DEBUG]") {
		t.Fatal("mifsecd did not log at trace/debug level: nothing was checked")
	}
	lower := strings.ToLower(mlog)
	for _, needle := range []string{psk, hex.EncodeToString([]byte(psk)), base64.StdEncoding.EncodeToString([]byte(psk))} {
		if strings.Contains(mlog, needle) || strings.Contains(lower, strings.ToLower(needle)) {
			t.Fatalf("mifsecd's log contains the PSK (%q)", needle)
		}
	}
	for _, k := range keys {
		if len(k) < 16 {
			continue
		}
		for _, needle := range []string{hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), base64.RawStdEncoding.EncodeToString(k)} {
			if strings.Contains(lower, strings.ToLower(needle)) || strings.Contains(mlog, needle) {
				t.Fatalf("mifsecd's log contains a %d-byte key that charon derived", len(k))
			}
		}
		// Any 16-byte window of the key in hex.
		h := hex.EncodeToString(k[:16])
		if strings.Contains(lower, h) {
			t.Fatalf("mifsecd's log contains key material")
		}
	}
	t.Logf("checked %d keys and the PSK against %d bytes of mifsecd debug log", len(keys), len(mlog))
}
