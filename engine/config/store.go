// Package config persists the engine's configuration (interfaces, and later
// connections, pools, steering rules, secrets) under the state directory.
//
// Writes are atomic: the document goes to a temporary file in the same
// directory, is synced, renamed over the old one, and the directory is
// synced, so a crash (kill -9, power loss) leaves either the old or the new
// document, never a torn one.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Store reads and writes one JSON document in a directory.
type Store struct {
	dir  string
	name string
}

// Open prepares dir (mode 0700) to hold the document file name.
func Open(dir, name string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	return &Store{dir: dir, name: name}, nil
}

// Path is the document's file path.
func (s *Store) Path() string { return filepath.Join(s.dir, s.name) }

// Load decodes the document into v. It returns false when there is none yet.
func (s *Store) Load(v any) (bool, error) {
	b, err := os.ReadFile(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode state %s: %w", s.Path(), err)
	}
	return true, nil
}

// Save writes v atomically, indented.
func (s *Store) Save(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return s.write(b)
}

// SaveCompact writes v atomically without indentation: for large
// machine-written documents (half the encoding time).
func (s *Store) SaveCompact(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return s.write(b)
}

func (s *Store) write(b []byte) error {
	f, err := os.CreateTemp(s.dir, "."+s.name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, s.Path()); err != nil {
		return fmt.Errorf("replace state: %w", err)
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	return nil
}
