// Command summary reads `go test -json` for scripts/test.sh. Its stream
// mode prints the tests' output as it comes (all of it with -v, else the
// packages' lines and the output of failed tests, as `go test` without -v
// does) and records the events in a file named after the step. Its report
// mode reads those files at the end of the suite, lists every skipped test
// by name and every fuzz target's execution count, and fails under
// CI=true on a skip not on the allow-list (skips.go) or a fuzz target that
// made fewer than minFuzzExecs executions.
//
// It is not a test runner: scripts/test.sh runs go test and pipes it here.
//
//	go test -json ./... 2>&1 | summary stream -o DIR/unit.json
//	summary report DIR
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Getenv("CI") == "true"); err != nil {
		fmt.Fprintln(os.Stderr, "summary:", err)
		os.Exit(1)
	}
}

// errFailed says the tests read failed; their output says how.
var errFailed = errors.New("tests failed")

func run(args []string, stdin io.Reader, stdout io.Writer, ci bool) error {
	if len(args) == 0 {
		return errors.New("usage: summary stream [-v] -o FILE | summary report DIR")
	}
	switch args[0] {
	case "stream":
		return runStream(args[1:], stdin, stdout)
	case "report":
		return runReport(args[1:], stdout, ci)
	}
	return fmt.Errorf("unknown mode %q (stream or report)", args[0])
}

func runStream(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("stream", flag.ContinueOnError)
	verbose := fs.Bool("v", false, "print every test's output, not only failed tests'")
	out := fs.String("o", "", "record the events in this file (its name up to the first dot names the step)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("stream: -o FILE is required")
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	failed, err := stream(stdin, stdout, f, *verbose)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && failed {
		err = errFailed
	}
	return err
}

func runReport(args []string, stdout io.Writer, ci bool) error {
	if len(args) != 1 {
		return errors.New("report: name the directory of recorded steps")
	}
	s, err := readSteps(os.DirFS(args[0]))
	if err != nil {
		return err
	}
	return s.write(stdout, ci)
}
