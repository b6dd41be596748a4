package server

import (
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/iface/ifacetest"
)

func TestEngineStatsEmpty(t *testing.T) {
	e, err := engine.New(engine.Config{StateDir: t.TempDir(), Links: ifacetest.New(), Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rs, err := EngineStats{E: e}.RuntimeStats(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Handshake.Buckets) != len(engine.HandshakeBuckets) || rs.Handshake.Count != 0 || len(rs.ChildSAs) != 0 || len(rs.Paths) != 0 {
		t.Fatalf("stats of an empty engine: %+v", rs)
	}
}
