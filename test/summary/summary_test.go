package main

import (
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

// The files under testdata are real `go test -json` output of a small
// module (example.com/fx) with a passing, a failing, a skipped test, a
// skipped subtest and a fuzz target, fuzzed for 4 s (ok/) and for 50
// executions (few/); buildfail.json is a package that does not compile.

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStreamPrintsFailedTestsOnly(t *testing.T) {
	var out, rec strings.Builder
	in := "go: downloading example.com/x v1.0.0\n" + readFixture(t, "ok/unit.json")
	failed, err := stream(strings.NewReader(in), &out, &rec, false)
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("failed = false for a run with a failed test")
	}
	for _, want := range []string{"go: downloading example.com/x v1.0.0\n", "the reason it failed", "--- FAIL: TestFails", "FAIL\texample.com/fx\t"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, unwanted := range []string{"quiet unless it fails", "=== RUN   TestPasses", "needs a loop device"} {
		if strings.Contains(out.String(), unwanted) {
			t.Errorf("output has %q (a test that did not fail):\n%s", unwanted, out.String())
		}
	}
	if rec.String() != in {
		t.Error("the record is not the input as read")
	}
}

func TestStreamVerbosePrintsEverything(t *testing.T) {
	var out, rec strings.Builder
	if _, err := stream(strings.NewReader(readFixture(t, "ok/unit.json")), &out, &rec, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"=== RUN   TestPasses\n", "quiet unless it fails", "--- SKIP: TestSub/skipped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("verbose output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestStreamBuildFailure(t *testing.T) {
	var out, rec strings.Builder
	failed, err := stream(strings.NewReader(readFixture(t, "buildfail.json")), &out, &rec, false)
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("failed = false for a package that does not build")
	}
	if !strings.Contains(out.String(), "undefined: undefined") {
		t.Errorf("the compiler's message is not shown:\n%s", out.String())
	}
}

// TestStreamUnfinishedTest: a test binary that dies mid-test leaves a
// test without its end; what it said must still be shown.
func TestStreamUnfinishedTest(t *testing.T) {
	in := `{"Action":"run","Package":"p","Test":"TestCrash"}
{"Action":"output","Package":"p","Test":"TestCrash","Output":"panic: boom\n"}
`
	var out, rec strings.Builder
	if _, err := stream(strings.NewReader(in), &out, &rec, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "panic: boom") {
		t.Errorf("an unfinished test's output is lost: %q", out.String())
	}
}

// report reads the named fixtures as the records of one suite.
func report(t *testing.T, ci bool, files map[string]string) (string, error) {
	t.Helper()
	dir := fstest.MapFS{}
	for name, text := range files {
		dir[name] = &fstest.MapFile{Data: []byte(text)}
	}
	s, err := readSteps(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	err = s.write(&out, ci)
	return out.String(), err
}

func TestReportListsSkipsByName(t *testing.T) {
	out, err := report(t, false, map[string]string{"unit.json": readFixture(t, "ok/unit.json")})
	if err != nil {
		t.Fatalf("outside CI a skip must not fail: %v", err)
	}
	for _, want := range []string{
		"skipped tests: 2\n",
		"SKIP example.com/fx TestSkips (unit step): fx_test.go:7: needs a loop device\n",
		"SKIP example.com/fx TestSub/skipped (unit step): fx_test.go:12: no chromium\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestReportFailsUnderCIOnASkip(t *testing.T) {
	out, err := report(t, true, map[string]string{"unit.json": readFixture(t, "ok/unit.json")})
	if err == nil {
		t.Errorf("under CI a skip not on the list must fail:\n%s", out)
	}
}

func TestReportAllowsListedSkips(t *testing.T) {
	skip := func(pkg, test string) string {
		return `{"Action":"output","Package":"` + pkg + `","Test":"` + test + `","Output":"    x_test.go:1: set PULLCACHE_E2E=1\n"}
{"Action":"skip","Package":"` + pkg + `","Test":"` + test + `"}
`
	}
	unit := skip(module+"/test/e2e", "TestPull") + skip(module+"/test/e2e", "TestPush") + skip(module+"/bench", "TestSmoke")
	out, err := report(t, true, map[string]string{"unit.json": unit})
	if err != nil {
		t.Fatalf("listed skips failed the report: %v\n%s", err, out)
	}
	if !strings.Contains(out, "skipped tests: 0\n") {
		t.Errorf("listed skips are not set apart:\n%s", out)
	}
	if !strings.Contains(out, "allowed: 2 skipped in test/e2e, unit step: they run in the e2e step\n") {
		t.Errorf("the allowed skips are not counted:\n%s", out)
	}
	// The same skip in the step that should run it is a missing check.
	if out, err := report(t, true, map[string]string{"e2e.json": skip(module+"/test/e2e", "TestPull")}); err == nil {
		t.Errorf("an e2e test skipped in the e2e step passed under CI:\n%s", out)
	}
}

func TestReportFuzzExecutions(t *testing.T) {
	out, err := report(t, true, map[string]string{"fuzz.fx.FuzzCheap.json": readFixture(t, "ok/fuzz.fx.FuzzCheap.json")})
	if err != nil {
		t.Fatalf("a target that ran 221268 times failed: %v\n%s", err, out)
	}
	// The last progress line has the largest count: 221268 after 4 s.
	if !strings.Contains(out, "  example.com/fx FuzzCheap: 221268\n") {
		t.Errorf("report lacks the execution count:\n%s", out)
	}
}

func TestReportFuzzBelowMinimum(t *testing.T) {
	files := map[string]string{"fuzz.fx.FuzzCheap.json": readFixture(t, "few/fuzz.fx.FuzzCheap.json")}
	out, err := report(t, true, files)
	if err == nil {
		t.Errorf("under CI a target with 50 executions passed:\n%s", out)
	}
	if !strings.Contains(out, "FuzzCheap: 50  BELOW 1000") {
		t.Errorf("report does not mark the target:\n%s", out)
	}
	if _, err := report(t, false, files); err != nil {
		t.Errorf("outside CI a slow target must not fail: %v", err)
	}
}

// TestReportFuzzWithoutProgress: a target that never printed a count
// (stuck gathering its baseline) made none.
func TestReportFuzzWithoutProgress(t *testing.T) {
	fuzz := `{"Action":"output","Package":"p","Test":"FuzzStuck","Output":"fuzz: elapsed: 0s, gathering baseline coverage: 0/8 completed\n"}
{"Action":"pass","Package":"p","Test":"FuzzStuck"}
`
	out, err := report(t, true, map[string]string{"fuzz.p.FuzzStuck.json": fuzz})
	if err == nil {
		t.Errorf("a target without executions passed:\n%s", out)
	}
	if !strings.Contains(out, "p FuzzStuck: 0  BELOW") {
		t.Errorf("report:\n%s", out)
	}
}

func TestRunModes(t *testing.T) {
	dir := t.TempDir()
	var out strings.Builder
	in := strings.NewReader(readFixture(t, "ok/unit.json"))
	if err := run([]string{"stream", "-o", dir + "/unit.json"}, in, &out, false); !errors.Is(err, errFailed) {
		t.Errorf("stream of a failed run: err = %v, want errFailed", err)
	}
	out.Reset()
	if err := run([]string{"report", dir}, nil, &out, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "skipped tests: 2") {
		t.Errorf("report of the recorded step:\n%s", out.String())
	}
}
