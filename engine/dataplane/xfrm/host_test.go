package xfrm

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/vishvananda/netns"
	"go.uber.org/goleak"
)

// scratch returns the path of a fresh network namespace (removed when the
// test ends), or skips without privileges.
func scratch(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a scratch network namespace")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		runtime.UnlockOSThread()
		t.Skipf("no scratch namespace: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	runtime.UnlockOSThread()
	t.Cleanup(func() { ns.Close() })
	return fmt.Sprintf("/proc/self/fd/%d", int(ns))
}

// TestLifecycle runs wherever the xfrm netlink family exists: what needs
// no ESP (bookkeeping, errors, Close) must work on any kernel.
func TestLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	d, err := New(Config{NetNS: scratch(t)}, nil)
	if err != nil {
		t.Skipf("no xfrm netlink here: %v", err)
	}
	if d.Name() != "xfrm" {
		t.Fatalf("Name() = %q", d.Name())
	}
	sa := testSA(dataplane.SuiteAESGCM128, dataplane.Out)
	err = d.AddSA(ctx, sa)
	switch {
	case err == nil:
		t.Log("this kernel has ESP")
		if err := d.DeleteSA(ctx, sa.SPI, sa.Direction); err != nil {
			t.Fatal(err)
		}
	case errors.Is(err, dataplane.ErrUnsupported):
		t.Logf("no kernel ESP, as expected on build machines: %v", err)
	default:
		t.Fatalf("AddSA: %v", err)
	}
	if err := d.DeleteSA(ctx, sa.SPI, sa.Direction); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("DeleteSA of nothing: %v", err)
	}
	if _, err := d.Counters(ctx, sa.SPI, sa.Direction); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("Counters of nothing: %v", err)
	}
	if err := d.AddPolicy(ctx, pol(dataplane.Out, 0x999)); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("AddPolicy with an unknown SA: %v", err)
	}
	// Bypass and discard policies need no SA and no ESP.
	bypass := pol(dataplane.Out)
	bypass.Action = dataplane.Bypass
	if err := d.AddPolicy(ctx, bypass); err != nil {
		t.Fatalf("AddPolicy(bypass): %v", err)
	}
	if err := d.AddPolicy(ctx, bypass); !errors.Is(err, dataplane.ErrExists) {
		t.Fatalf("second AddPolicy: %v", err)
	}
	bypass.Action = dataplane.Discard
	bypass.Remote = append(bypass.Remote, dataplane.Selector{Prefix: netip.MustParsePrefix("10.9.0.0/16")})
	if err := d.UpdatePolicy(ctx, bypass); err != nil {
		t.Fatalf("UpdatePolicy: %v", err)
	}
	if n := len(d.policies[bypass.ID].kernel); n != 2 {
		t.Fatalf("%d kernel policies after update, want 2", n)
	}
	if err := d.DeletePolicy(ctx, bypass.ID); err != nil {
		t.Fatalf("DeletePolicy: %v", err)
	}
	if err := d.UpdatePolicy(ctx, bypass); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("UpdatePolicy of nothing: %v", err)
	}
	if err := d.CheckSteering(nil); err != nil {
		t.Fatal(err)
	}
	if err := d.CheckSteering(steer{}); !errors.Is(err, dataplane.ErrUnsupported) {
		t.Fatalf("CheckSteering: %v", err)
	}
	d.SetSteering(steer{})
	if v, m, err := d.PathMark(4); err != nil || v != 4 || m != ^uint32(0) {
		t.Fatalf("PathMark(4) = %d, %#x, %v", v, m, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.AddSA(cancelled, sa); !errors.Is(err, context.Canceled) {
		t.Fatalf("AddSA(cancelled): %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-d.Events(); ok {
		t.Fatal("Events not closed")
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := d.AddPolicy(ctx, bypass); err == nil {
		t.Fatal("AddPolicy after Close succeeded")
	}
}

type steer struct{}

func (steer) Pick(dataplane.Flow, uint64, []uint32) uint32 { return 0 }

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{Binding: 9}, nil); err == nil {
		t.Fatal("unknown binding accepted")
	}
	if _, err := New(Config{NetNS: "/nonexistent/ns"}, nil); err == nil {
		t.Fatal("missing namespace accepted")
	}
}
