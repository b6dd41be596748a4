package engine

import (
	"fmt"
	"net/netip"
	"regexp"
	"time"

	"github.com/mifsec/mifsec/engine/iface"
)

// AccessType is the kind of access network an interface attaches to (DESIGN.md §1 G6).
type AccessType uint8

const (
	AccessUnspecified AccessType = iota
	AccessRAN
	AccessWLAN
	AccessWired
	AccessSatellite
	AccessOther
)

var accessNames = [...]string{"unspecified", "ran", "wlan", "wired", "satellite", "other"}

func (a AccessType) String() string {
	if int(a) < len(accessNames) {
		return accessNames[a]
	}
	return fmt.Sprintf("access(%d)", a)
}

// ParseAccessType reads the String form.
func ParseAccessType(s string) (AccessType, error) {
	for i, n := range accessNames {
		if i > 0 && n == s {
			return AccessType(i), nil
		}
	}
	return 0, fmt.Errorf("unknown access type %q", s)
}

// InterfaceSpec is the configurable part of an interface.
type InterfaceSpec struct {
	Link       string     `json:"link"`
	AccessType AccessType `json:"access_type"`
	Priority   uint32     `json:"priority"`
	Metered    bool       `json:"metered"`
}

// Counters of an interface: the kernel's and ours.
type Counters struct {
	iface.Stats
	LinkTransitions uint64
	AddressChanges  uint64
}

// Interface is an interface as the API shows it.
type Interface struct {
	ID string
	InterfaceSpec
	State      iface.State
	Index      int
	MTU        int
	Addrs      []netip.Prefix
	Counters   Counters
	CreateTime time.Time
	UpdateTime time.Time
}

// Interface field names accepted by UpdateInterface.
const (
	FieldLink       = "link"
	FieldAccessType = "access_type"
	FieldPriority   = "priority"
	FieldMetered    = "metered"
)

// InterfaceFields lists every updatable field.
var InterfaceFields = []string{FieldLink, FieldAccessType, FieldPriority, FieldMetered}

// AIP-122 resource ids: lower-case letters, digits and '-', starting with a
// letter, at most 63 characters.
var idPattern = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidID checks a resource id.
func ValidID(id string) error {
	if id == "" {
		return fmt.Errorf("id is empty")
	}
	if len(id) > 63 {
		return fmt.Errorf("id is %d characters, at most 63 allowed", len(id))
	}
	if !idPattern.MatchString(id) {
		return fmt.Errorf("id %q must be lower-case letters, digits and '-', start with a letter and not end with '-'", id)
	}
	return nil
}

func (s InterfaceSpec) validate(field string) error {
	if err := iface.ValidLinkName(s.Link); err != nil {
		return &Error{Code: InvalidArgument, Reason: ReasonInvalidLink, Field: field + "link", Msg: err.Error()}
	}
	if s.AccessType == AccessUnspecified || int(s.AccessType) >= len(accessNames) {
		return errf(InvalidArgument, ReasonInvalidAccessType, field+"access_type", "access type must be one of ran, wlan, wired, satellite, other")
	}
	return nil
}
