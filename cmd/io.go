package cmd

import (
	"io"
	"os"

	"golang.org/x/term"
)

// IO is what a command reads and writes. TTY says Out is a terminal, which
// turns on tables with colour and progress bars. Interactive says a person
// can answer a question: In and Err are terminals.
type IO struct {
	In          io.Reader
	Out         io.Writer
	Err         io.Writer
	TTY         bool
	Interactive bool
	// Width is the terminal's width in columns when Out is one, else 0.
	Width int
}

// SystemIO is the process's own streams. Colour and bars only on a
// terminal, and never when NO_COLOR is set.
func SystemIO() *IO {
	tty := term.IsTerminal(int(os.Stdout.Fd())) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	interactive := term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stderr.Fd()))
	width := 0
	if w, _, err := term.GetSize(int(os.Stdout.Fd())); err == nil && tty {
		width = w
	}
	return &IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, TTY: tty, Interactive: interactive, Width: width}
}
