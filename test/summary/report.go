package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// minFuzzExecs is the fewest executions a fuzz target must make in its
// run: below it the target barely ran (a slow property, an unbounded cost
// in the input) and found nothing because it tried nothing.
const minFuzzExecs = 1000

// fuzzStep is the step name of the fuzz runs' records ("fuzz.*.json").
const fuzzStep = "fuzz"

// skipped is one skipped test and the first thing it said (its reason).
type skipped struct {
	step, pkg, test, reason string
}

// fuzzed is one fuzz target's run and its executions.
type fuzzed struct {
	pkg, test string
	execs     int64
}

// steps is what the recorded steps say.
type steps struct {
	skips []skipped
	fuzz  []fuzzed
}

// readSteps reads every *.json record in dir, in name order.
func readSteps(dir fs.FS) (*steps, error) {
	names, err := fs.Glob(dir, "*.json")
	if err != nil {
		return nil, err
	}
	s := &steps{}
	for _, name := range names {
		b, err := fs.ReadFile(dir, name)
		if err != nil {
			return nil, err
		}
		step, _, _ := strings.Cut(name, ".")
		if err := s.read(step, bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return s, nil
}

// execsLine is the fuzzing coordinator's progress line, printed every 3 s
// and when fuzzing stops: "fuzz: elapsed: 10s, execs: 123456 (12345/sec),
// new interesting: 3 (total: 11)".
var execsLine = regexp.MustCompile(`^fuzz: elapsed: \S+, execs: ([0-9]+) `)

// read adds one step's skips and, for the fuzz step, each target's
// executions: the largest count any of its progress lines gives.
func (s *steps) read(step string, r io.Reader) error {
	said := map[key][]string{}
	execs := map[key]int64{}
	return eachLine(r, func(_ []byte, e *event) error {
		if e == nil || e.Test == "" {
			return nil
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output":
			said[k] = append(said[k], e.Output)
			if m := execsLine.FindStringSubmatch(e.Output); m != nil {
				n, _ := strconv.ParseInt(m[1], 10, 64)
				execs[k] = max(execs[k], n)
			}
		case "skip":
			s.skips = append(s.skips, skipped{step, e.Package, e.Test, reason(said[k])})
		case "pass", "fail":
			if step == fuzzStep && strings.HasPrefix(e.Test, "Fuzz") && !strings.Contains(e.Test, "/") {
				s.fuzz = append(s.fuzz, fuzzed{e.Package, e.Test, execs[k]})
			}
		}
		return nil
	})
}

// reason is the first line a skipped test printed that is not the test
// framework's own ("=== RUN", "--- SKIP"): t.Skip's message.
func reason(lines []string) string {
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- ") {
			continue
		}
		return l
	}
	return "(no reason given)"
}

// write prints the summary; under ci a skip not allowed or a fuzz target
// below minFuzzExecs is an error.
func (s *steps) write(w io.Writer, ci bool) error {
	var problems []string
	allowed := map[string]int{}
	var listed []skipped
	for _, sk := range s.skips {
		if why, ok := allowedSkip(sk); ok {
			allowed[fmt.Sprintf("%s, %s step: %s", shortPkg(sk.pkg), sk.step, why)]++
			continue
		}
		listed = append(listed, sk)
	}
	fmt.Fprintf(w, "\nskipped tests: %d\n", len(listed))
	for _, sk := range listed {
		fmt.Fprintf(w, "  SKIP %s %s (%s step): %s\n", shortPkg(sk.pkg), sk.test, sk.step, sk.reason)
		problems = append(problems, fmt.Sprintf("%s %s skipped in the %s step", shortPkg(sk.pkg), sk.test, sk.step))
	}
	for _, why := range slices.Sorted(maps.Keys(allowed)) {
		fmt.Fprintf(w, "  allowed: %d skipped in %s\n", allowed[why], why)
	}
	fmt.Fprintf(w, "fuzz executions (at least %d each):\n", minFuzzExecs)
	if len(s.fuzz) == 0 {
		fmt.Fprintln(w, "  no fuzz targets ran")
	}
	for _, f := range s.fuzz {
		mark := ""
		if f.execs < minFuzzExecs {
			mark = "  BELOW " + strconv.Itoa(minFuzzExecs)
			problems = append(problems, fmt.Sprintf("%s %s made %d executions", shortPkg(f.pkg), f.test, f.execs))
		}
		fmt.Fprintf(w, "  %s %s: %d%s\n", shortPkg(f.pkg), f.test, f.execs, mark)
	}
	if len(problems) == 0 {
		return nil
	}
	if !ci {
		fmt.Fprintf(w, "(outside CI these do not fail the run; under CI=true they do)\n")
		return nil
	}
	return fmt.Errorf("under CI=true: %s", strings.Join(problems, "; "))
}

// shortPkg drops the module path from a package's import path.
func shortPkg(p string) string {
	if rest, ok := strings.CutPrefix(p, module+"/"); ok {
		return rest
	}
	return p
}
