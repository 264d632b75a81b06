package main

import (
	"bufio"
	"encoding/json"
	"io"
)

// event is one line of `go test -json` (cmd/test2json), with the fields
// this command reads; build output comes with ImportPath instead of
// Package (go1.24 and later).
type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
}

// maxLine bounds one line of go test -json; a test that prints a longer
// line without a newline is still read, in pieces.
const maxLine = 1 << 20

// eachLine calls f with every line of r, without its newline, and whether
// it is an event (else it is text the go command printed, as with 2>&1).
func eachLine(r io.Reader, f func(line []byte, e *event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxLine)
	for sc.Scan() {
		var e event
		var ev *event
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Action != "" {
			ev = &e
		}
		if err := f(sc.Bytes(), ev); err != nil {
			return err
		}
	}
	return sc.Err()
}

// key names a test across packages.
type key struct{ pkg, test string }
