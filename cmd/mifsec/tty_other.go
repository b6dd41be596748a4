//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
	"os"
)

// isTerminal is true for character devices; echo cannot be turned off here,
// so readHiddenLine refuses them.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func readHiddenLine(context.Context, *os.File, io.Writer, string) ([]byte, error) {
	return nil, errors.New("cannot read a secret from a terminal on this system without echo: pipe it or use --from-file")
}
