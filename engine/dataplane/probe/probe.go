// Package probe decides at start-up which data plane to run: the kernel's
// (xfrm) when it can do ESP, otherwise the userspace one (DESIGN.md §3).
//
// It imports netlink only, never a data plane: the engine can call it
// before building either.
package probe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"

	"github.com/hashicorp/go-hclog"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Names of the data planes.
const (
	Auto      = "auto"
	Xfrm      = "xfrm"
	Userspace = "userspace"
)

// Prober reports whether the kernel can do ESP and why (not).
type Prober func(ctx context.Context) (ok bool, reason string)

// Probe adds and removes a throw-away ESP state (AEAD rfc4106(gcm(aes)),
// RFC 4106) in a scratch network namespace, or in the current one when a
// namespace cannot be created. It needs CAP_NET_ADMIN.
func Probe(ctx context.Context) (bool, string) {
	if err := ctx.Err(); err != nil {
		return false, "kernel ESP not probed: " + err.Error()
	}
	where := "a scratch network namespace"
	ns, err := scratchNS()
	if err != nil {
		where = "the current network namespace (no scratch namespace: " + err.Error() + ")"
		ns = netns.None()
	} else {
		defer ns.Close()
	}
	if err := tryESP(ns); err != nil {
		return false, "kernel ESP unavailable: " + err.Error()
	}
	return true, "kernel ESP available: an rfc4106(gcm(aes)) state was added and removed in " + where
}

// scratchNS creates a network namespace without moving the caller into it.
func scratchNS() (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return netns.None(), err
	}
	defer orig.Close()
	ns, err := netns.New() // unshare(CLONE_NEWNET): this thread is now inside
	if err != nil {
		runtime.UnlockOSThread()
		return netns.None(), err
	}
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: it dies with this goroutine instead of
		// running other goroutines in the wrong namespace.
		ns.Close()
		return netns.None(), err
	}
	runtime.UnlockOSThread()
	return ns, nil
}

func tryESP(ns netns.NsHandle) error {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_XFRM)
	if err != nil {
		return fmt.Errorf("xfrm netlink: %w", err)
	}
	defer h.Close()
	key := make([]byte, 20) // AES-128 key ‖ salt
	defer clear(key)
	var spi [4]byte
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if _, err := rand.Read(spi[:]); err != nil {
		return err
	}
	st := &netlink.XfrmState{
		// TEST-NET-1 (RFC 5737): no real peer.
		Src: net.IPv4(192, 0, 2, 1).To4(), Dst: net.IPv4(192, 0, 2, 2).To4(),
		Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TUNNEL,
		Spi:  int(binary.BigEndian.Uint32(spi[:]) | 0x100), // never 0..255 (reserved, RFC 4303 §2.1)
		Aead: &netlink.XfrmStateAlgo{Name: "rfc4106(gcm(aes))", Key: key, ICVLen: 128},
	}
	// ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi SPI mode tunnel aead 'rfc4106(gcm(aes))' KEY 128
	if err := h.XfrmStateAdd(st); err != nil {
		return explain(err)
	}
	// ip xfrm state delete src 192.0.2.1 dst 192.0.2.2 proto esp spi SPI
	if err := h.XfrmStateDel(st); err != nil {
		return fmt.Errorf("remove probe state: %w", err)
	}
	return nil
}

// explain turns the kernel's errno into what is missing.
func explain(err error) error {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("AEAD rfc4106(gcm(aes)) not found (no ESP/GCM in this kernel?): %w", err)
	case errors.Is(err, unix.EPROTONOSUPPORT):
		return fmt.Errorf("ESP not supported (CONFIG_INET_ESP unset or esp4 not loaded): %w", err)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("crypto for ESP could not be initialised (missing module): %w", err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("not permitted (CAP_NET_ADMIN needed): %w", err)
	}
	return err
}

// Choice is the data plane to run and why.
type Choice struct {
	Plane  string // Xfrm or Userspace
	Reason string
}

// SelectError is returned when the configured data plane cannot run.
type SelectError struct {
	Mode   string
	Reason string
}

func (e *SelectError) Error() string { return "data plane " + e.Mode + ": " + e.Reason }

// Select picks the data plane for mode (auto, xfrm or userspace; empty means
// auto) and logs the choice and the reason. auto prefers xfrm when the kernel
// can do ESP; xfrm fails when it cannot. probe nil means Probe.
func Select(ctx context.Context, mode string, probe Prober, log hclog.Logger) (Choice, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if probe == nil {
		probe = Probe
	}
	if mode == "" {
		mode = Auto
	}
	var c Choice
	switch mode {
	case Userspace:
		c = Choice{Plane: Userspace, Reason: "configured: userspace"}
	case Xfrm:
		ok, why := probe(ctx)
		if !ok {
			err := &SelectError{Mode: Xfrm, Reason: why}
			log.Error("data plane unavailable", "mode", mode, "reason", why)
			return Choice{}, err
		}
		c = Choice{Plane: Xfrm, Reason: "configured: xfrm; " + why}
	case Auto:
		ok, why := probe(ctx)
		c = Choice{Plane: Userspace, Reason: why}
		if ok {
			c.Plane = Xfrm
		}
	default:
		return Choice{}, &SelectError{Mode: mode, Reason: "unknown mode, want auto, xfrm or userspace"}
	}
	log.Info("data plane selected", "mode", mode, "plane", c.Plane, "reason", c.Reason)
	return c, nil
}
