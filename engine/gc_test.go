package engine

import (
	"runtime/debug"
	"testing"
)

func TestApplyGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	for _, tc := range []struct {
		name    string
		env     string // "" = unset
		set     bool
		percent int
		want    GCSetting
		wantErr bool
	}{
		{name: "default", want: GCSetting{Percent: DefaultGCPercent, Source: "default"}},
		{name: "flag wins over GOGC", env: "200", set: true, percent: 80, want: GCSetting{Percent: 80, Source: "flag"}},
		{name: "flag off", set: true, percent: -1, want: GCSetting{Percent: -1, Source: "flag"}},
		{name: "GOGC", env: "150", want: GCSetting{Percent: 150, Source: "GOGC"}},
		{name: "GOGC off", env: "OFF", want: GCSetting{Percent: -1, Source: "GOGC"}},
		{name: "GOGC unreadable", env: "lots", want: GCSetting{Percent: DefaultGCPercent, Source: "default"}},
		{name: "flag below -1", set: true, percent: -2, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("GOGC", tc.env)
			} else {
				t.Setenv("GOGC", "")
			}
			debug.SetGCPercent(100)
			got, err := ApplyGCPercent(tc.set, tc.percent)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ApplyGCPercent(%v, %d) = %v, want an error", tc.set, tc.percent, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ApplyGCPercent(%v, %d) = %v, %v; want %v", tc.set, tc.percent, got, err, tc.want)
			}
			// What the runtime runs with now (GOGC from the environment is
			// applied by the runtime at start, not here).
			if tc.want.Source != "GOGC" {
				if now := debug.SetGCPercent(100); now != tc.want.Percent {
					t.Fatalf("runtime GC percent %d, want %d", now, tc.want.Percent)
				}
			}
		})
	}
}
