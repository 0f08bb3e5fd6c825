package cmdutil

import (
	"bytes"
	"io"
	"os"

	"golang.org/x/term"
)

// IOStreams are the standard streams of a command and whether each is a
// terminal.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	StdinTTY  bool
	StdoutTTY bool
	StderrTTY bool

	inFd, outFd int // -1 unless real terminals
}

// System returns the process's standard streams.
func System() *IOStreams { return Files(os.Stdin, os.Stdout, os.Stderr) }

// Files returns streams on open files, noting which are terminals.
func Files(in, out, errOut *os.File) *IOStreams {
	s := &IOStreams{In: in, Out: out, ErrOut: errOut, inFd: -1, outFd: -1}
	if term.IsTerminal(int(in.Fd())) {
		s.StdinTTY, s.inFd = true, int(in.Fd())
	}
	if term.IsTerminal(int(out.Fd())) {
		s.StdoutTTY, s.outFd = true, int(out.Fd())
	}
	s.StderrTTY = term.IsTerminal(int(errOut.Fd()))
	return s
}

// Test returns streams on buffers, none of them a terminal, and the
// buffers of stdout and stderr.
func Test(stdin string) (*IOStreams, *bytes.Buffer, *bytes.Buffer) {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: bytes.NewBufferString(stdin), Out: out, ErrOut: errOut, inFd: -1, outFd: -1}, out, errOut
}

// MakeRaw puts a terminal stdin into raw mode and returns the function that
// restores it; on anything else it does nothing.
func (s *IOStreams) MakeRaw() (restore func(), err error) {
	if s.inFd < 0 {
		return func() {}, nil
	}
	st, err := term.MakeRaw(s.inFd)
	if err != nil {
		return nil, err
	}
	return func() { _ = term.Restore(s.inFd, st) }, nil
}

// TerminalSize returns the size of a terminal stdout; ok is false when
// stdout is not one.
func (s *IOStreams) TerminalSize() (rows, cols int, ok bool) {
	if s.outFd < 0 {
		return 0, 0, false
	}
	w, h, err := term.GetSize(s.outFd)
	if err != nil || w <= 0 || h <= 0 {
		return 0, 0, false
	}
	return h, w, true
}
