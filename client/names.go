package client

import (
	"fmt"
	"strings"
)

// Collection is the first segment of a top-level resource name (AIP-122).
type Collection string

// Collections of the mifsec.v1 API.
const (
	Interfaces  Collection = "interfaces"
	Connections Collection = "connections"
	Pools       Collection = "pools"
	Secrets     Collection = "secrets"
)

// NameError reports an identifier that is not a name in the expected
// collection.
type NameError struct {
	Collection Collection
	Input      string
	Reason     string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("bad %s name %q: %s", strings.TrimSuffix(string(e.Collection), "s"), e.Input, e.Reason)
}

// Name returns the resource name `{collection}/{id}` for an input that is
// either a bare id (`wlan`) or already a name (`interfaces/wlan`). Whether
// the id itself is valid is the daemon's decision.
func (c Collection) Name(idOrName string) (string, error) {
	id, err := c.ID(idOrName)
	if err != nil {
		return "", err
	}
	return string(c) + "/" + id, nil
}

// ID returns the last segment of a resource name, accepting a bare id too.
func (c Collection) ID(idOrName string) (string, error) {
	s := strings.TrimPrefix(idOrName, string(c)+"/")
	switch {
	case idOrName == "":
		return "", &NameError{c, idOrName, "empty"}
	case s == "":
		return "", &NameError{c, idOrName, "empty id"}
	case strings.Contains(s, "/"):
		return "", &NameError{c, idOrName, fmt.Sprintf("want an id or %s/{id}", c)}
	}
	return s, nil
}
