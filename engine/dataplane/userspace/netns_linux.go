package userspace

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// nsHandle runs functions inside a network namespace: sockets and TUN
// devices stay in the namespace they were created in, whatever thread later
// uses them.
type nsHandle struct {
	h    netns.NsHandle
	path string
}

// openNS opens the namespace at path; an empty path means the caller's own
// namespace, and do then just calls the function.
func openNS(path string) (*nsHandle, error) {
	if path == "" {
		return &nsHandle{h: -1}, nil
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("userspace: netns %s: %w", path, err)
	}
	return &nsHandle{h: h, path: path}, nil
}

// do runs fn on a thread switched into the namespace, like
// `ip netns exec NAME`, and switches the thread back. If switching back
// fails the thread stays locked, so the runtime retires it with the
// goroutine instead of reusing it in the wrong namespace.
func (n *nsHandle) do(fn func() error) error {
	if n == nil || n.h == -1 {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("userspace: current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(n.h); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("userspace: enter netns %s: %w", n.path, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("userspace: leave netns %s: %w", n.path, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func (n *nsHandle) close() {
	if n != nil && n.h != -1 {
		n.h.Close()
		n.h = -1
	}
}
