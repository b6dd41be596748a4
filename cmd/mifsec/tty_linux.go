package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// readHiddenLine prompts on w and reads one line from the terminal f with
// echo off; the terminal is restored on return, also when ctx ends first
// (the reader goroutine then stays blocked until the process exits).
func readHiddenLine(ctx context.Context, f *os.File, w io.Writer, prompt string) ([]byte, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("read terminal settings: %w", err)
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, fmt.Errorf("turn terminal echo off: %w", err)
	}
	defer func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }()
	fmt.Fprint(w, prompt)
	type line struct {
		b   []byte
		err error
	}
	ch := make(chan line, 1)
	go func() {
		b, err := bufio.NewReaderSize(f, 4096).ReadSlice('\n')
		ch <- line{append([]byte(nil), b...), err}
		clear(b)
	}()
	select {
	case l := <-ch:
		fmt.Fprintln(w)
		if l.err != nil && l.err != io.EOF {
			clear(l.b)
			return nil, fmt.Errorf("read terminal: %w", l.err)
		}
		return l.b, nil
	case <-ctx.Done():
		fmt.Fprintln(w)
		return nil, ctx.Err()
	}
}
