package transform

import (
	"sync"

	"github.com/mifsec/mifsec/engine/ike"
)

// SharedDH lets one D-H pair answer several exchanges, as RFC 7296 §2.12
// allows ("an endpoint may find it advantageous to reuse those
// exponentials for multiple connection setups"). Each exchange gets a
// handle (Handle); the private value is cleared once the owner retired
// the pair and the last handle was destroyed, so a pair outlives neither
// its reuse period nor the exchanges still using it. The recipient tests
// RFC 6989 asks of an implementation that reuses exponentials are the
// ones SharedSecret always makes (§2.1-2.3 for the groups this package
// supports; the MODP groups are safe primes).
type SharedDH struct {
	mu      sync.Mutex
	key     *DHKey
	refs    int
	retired bool
}

// ShareDH takes ownership of k.
func ShareDH(k *DHKey) *SharedDH { return &SharedDH{key: k} }

// Group is the D-H group of the shared pair.
func (s *SharedDH) Group() ike.GroupID { return s.key.group }

// Handle returns a key for one exchange: its own DHKey whose Destroy
// releases the handle (it stops working; the pair's private value is
// cleared with the last handle of a retired pair). ok is false once the
// pair is retired.
func (s *SharedDH) Handle() (k *DHKey, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired {
		return nil, false
	}
	s.refs++
	return &DHKey{group: s.key.group, spec: s.key.spec, priv: s.key.priv, pub: s.key.pub, share: s}, true
}

// Retire ends the reuse: no handle is given any more, and the private
// value is cleared now or when the last handle is destroyed.
func (s *SharedDH) Retire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retired = true
	if s.refs == 0 {
		s.key.Destroy()
	}
}

// Handles is the number of handles not destroyed yet.
func (s *SharedDH) Handles() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refs
}

func (s *SharedDH) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.refs == 0 && s.retired {
		s.key.Destroy()
	}
}
