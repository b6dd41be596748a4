package interop

import (
	"testing"
	"time"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
	"github.com/mifsec/mifsec/test/topo"
)

// 1. mifsec end user → strongSwan gateway: PSK, virtual IP from strongSwan's
// pool, ping and a short iperf3 run to the server behind the gateway.
func TestMifsecUEStrongSwanGW(t *testing.T) {
	tp := topo.Build(t)
	gw := swGateway(t, tp, nil)
	d := mifsecUE(t, tp, nil)
	ctx := ctxT(t)
	r, err := d.Client.Connections.InitiateConnection(ctx, &mifsecv1.InitiateConnectionRequest{Name: "connections/gw"})
	if err != nil {
		t.Fatalf("initiate: %v\ncharon log:\n%s", err, gw.Log())
	}
	sa := ikeSA(t, d, "gw")
	if sa.Name != r.IkeSa || sa.State != mifsecv1.IkeSaState_IKE_SA_STATE_ESTABLISHED || sa.RemoteId != "@"+gwID {
		t.Fatalf("IKE SA %v", sa)
	}
	v := vip(t, sa)
	if !topo.VIPPool.Contains(v) {
		t.Fatalf("virtual IP %s not from strongSwan's pool %s", v, topo.VIPPool)
	}
	sws, err := gw.Vici().ListSAs(ctx, "")
	if err != nil || len(sws) != 1 || len(sws[0].Children) != 1 {
		t.Fatalf("strongSwan SAs %+v %v", sws, err)
	}
	kids := childSAs(t, d, sa.Name)
	if len(kids) != 1 {
		t.Fatalf("children %v", kids)
	}
	stats, err := tp.UE.Ping(ctx, topo.PingOptions{Src: v, Dst: topo.SRV, Count: 20, Rate: 50})
	if err != nil || stats.Lost != 0 {
		t.Fatalf("ping through the tunnel: %v %v\ncharon:\n%s", stats, err, gw.Log())
	}
	res, err := topo.Iperf3(ctx, tp.UE, tp.SRV, topo.IperfOptions{Server: topo.SRV, Bind: v, Duration: 2 * time.Second})
	if err != nil || res.ReceivedBps <= 0 {
		t.Fatalf("iperf3: %+v %v", res, err)
	}
	t.Logf("iperf3 through mifsec→strongSwan: %.0f Mbit/s", res.ReceivedBps/1e6)
	after := childSAs(t, d, sa.Name)[0]
	if after.PacketsOut < 20 || after.PacketsIn < 20 {
		t.Fatalf("counters did not move: %v", after)
	}
}
