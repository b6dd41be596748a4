package client

import (
	"errors"
	"testing"
)

func TestCollectionName(t *testing.T) {
	tests := []struct {
		in, name, id string
		wantErr      bool
	}{
		{"wlan", "interfaces/wlan", "wlan", false},
		{"interfaces/wlan", "interfaces/wlan", "wlan", false},
		{"ran-1", "interfaces/ran-1", "ran-1", false},
		{"", "", "", true},
		{"interfaces/", "", "", true},
		{"connections/c1", "", "", true},
		{"interfaces/a/b", "", "", true},
	}
	for _, tt := range tests {
		name, err := Interfaces.Name(tt.in)
		id, err2 := Interfaces.ID(tt.in)
		if tt.wantErr {
			var ne *NameError
			if !errors.As(err, &ne) || !errors.As(err2, &ne) {
				t.Errorf("%q: got %q, %v / %q, %v; want *NameError", tt.in, name, err, id, err2)
			}
			continue
		}
		if err != nil || err2 != nil || name != tt.name || id != tt.id {
			t.Errorf("%q: got %q, %v / %q, %v; want %q / %q", tt.in, name, err, id, err2, tt.name, tt.id)
		}
	}
}

func TestNameErrorText(t *testing.T) {
	_, err := Interfaces.Name("connections/c1")
	want := `bad interface name "connections/c1": want an id or interfaces/{id}`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}
