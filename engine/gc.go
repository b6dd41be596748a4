package engine

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultGCPercent is the garbage collector's target (GOGC) a daemon
// embedding the engine runs with unless the operator chose one. A gateway's
// heap is mostly long-lived SA state and each handshake's garbage is
// short-lived, so the heap peaks at about (1 + GOGC/100) times the live
// state: at 50 instead of Go's 100 the resident memory per SA fell by a
// quarter (BenchmarkHeapPerSA, 4,000 SAs: 22 -> 16 KB for both ends) for
// about 12 % more CPU per handshake (GC runs twice as often); at 25 the
// memory fell no further and the CPU rose by 60 % (docs/operations.md).
const DefaultGCPercent = 50

// GCSetting is the collector setting in force and where it came from.
type GCSetting struct {
	// Percent is the GOGC value; negative means the collector is off.
	Percent int
	// Source is "flag", "GOGC" (the environment) or "default".
	Source string
}

func (g GCSetting) String() string {
	if g.Percent < 0 {
		return "off (" + g.Source + ")"
	}
	return fmt.Sprintf("%d%% (%s)", g.Percent, g.Source)
}

// ApplyGCPercent sets the collector's target for the process: percent when
// the operator gave it (set), else what GOGC in the environment says (the
// runtime already applied it), else DefaultGCPercent. A negative percent
// turns the collector off, as GOGC=off does; GOMEMLIMIT, when set, still
// bounds the heap either way.
func ApplyGCPercent(set bool, percent int) (GCSetting, error) {
	if set {
		if percent < -1 {
			return GCSetting{}, fmt.Errorf("GC percent %d: must be -1 (off) or more", percent)
		}
		debug.SetGCPercent(percent)
		return GCSetting{Percent: percent, Source: "flag"}, nil
	}
	if env, ok := os.LookupEnv("GOGC"); ok && env != "" {
		if strings.EqualFold(env, "off") {
			return GCSetting{Percent: -1, Source: "GOGC"}, nil
		}
		if v, err := strconv.Atoi(env); err == nil {
			return GCSetting{Percent: v, Source: "GOGC"}, nil
		}
		// The runtime ignores a GOGC it cannot read; so do we.
	}
	debug.SetGCPercent(DefaultGCPercent)
	return GCSetting{Percent: DefaultGCPercent, Source: "default"}, nil
}
