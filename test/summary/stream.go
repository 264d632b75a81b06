package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// streamer prints events as they come: package lines and build output at
// once, a test's output at once when verbose, else held until the test
// ends and printed only if it failed.
type streamer struct {
	out     io.Writer
	verbose bool
	held    map[key]*strings.Builder
	order   []key // held tests in order of their first line, to flush in order
	failed  bool
}

// stream copies r's lines to rec, prints them to out as a streamer, and
// says whether any test or build failed.
func stream(r io.Reader, out, rec io.Writer, verbose bool) (bool, error) {
	s := &streamer{out: out, verbose: verbose, held: map[key]*strings.Builder{}}
	err := eachLine(r, func(line []byte, e *event) error {
		if _, err := fmt.Fprintf(rec, "%s\n", line); err != nil {
			return err
		}
		if e == nil {
			_, err := fmt.Fprintf(out, "%s\n", line)
			return err
		}
		return s.handle(e)
	})
	// Tests that never ended (a crashed test binary): show what they said.
	s.flush(func(key) bool { return true })
	return s.failed, err
}

func (s *streamer) handle(e *event) error {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		return s.print(e.Output)
	case "build-fail":
		s.failed = true
	case "output":
		if e.Test == "" || s.verbose {
			return s.print(e.Output)
		}
		s.hold(k, e.Output)
	case "fail":
		s.failed = true
		if e.Test == "" {
			// A failed package may have tests that never ended.
			s.flush(func(h key) bool { return h.pkg == e.Package })
		} else {
			s.flush(func(h key) bool { return h == k })
		}
	case "pass", "skip":
		s.drop(k)
	}
	return nil
}

func (s *streamer) print(text string) error {
	_, err := io.WriteString(s.out, text)
	return err
}

func (s *streamer) hold(k key, text string) {
	b := s.held[k]
	if b == nil {
		b = &strings.Builder{}
		s.held[k] = b
		s.order = append(s.order, k)
	}
	b.WriteString(text)
}

func (s *streamer) drop(k key) {
	if _, ok := s.held[k]; ok {
		delete(s.held, k)
		s.order = slices.DeleteFunc(s.order, func(h key) bool { return h == k })
	}
}

// flush prints and forgets the held output of the tests match selects.
func (s *streamer) flush(match func(key) bool) {
	for _, k := range slices.Clone(s.order) {
		if match(k) {
			s.print(s.held[k].String())
			s.drop(k)
		}
	}
}
