package main

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the benchmark in quick mode end to end when
// PULLCACHE_BENCH_SMOKE=1, so the harness cannot rot. It checks that every
// row produced its numbers; it asserts no speed ratio and no target.
func TestSmoke(t *testing.T) {
	if os.Getenv("PULLCACHE_BENCH_SMOKE") != "1" {
		t.Skip("set PULLCACHE_BENCH_SMOKE=1 to run the benchmark's quick mode")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	rep, err := run(ctx, quickConfig(), t.Output())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var table strings.Builder
	rep.write(&table)
	t.Log(table.String())
	for _, e := range rep.errs {
		t.Errorf("reported error: %s", e)
	}
	for _, r := range rep.rows {
		for _, c := range expectedCells(r) {
			if !c.cell.ok {
				t.Errorf("row %s: no %s number", r.id, c.name)
			}
		}
	}
}

type namedCell struct {
	name string
	cell cell
}

// expectedCells lists the cells row r must have filled: pullcache always,
// the anchors where the row compares with them, and for row 5 an upstream
// GET count of at least one for both caches (zero would mean the counting
// proxy saw nothing).
func expectedCells(r *row) []namedCell {
	cells := []namedCell{{"pullcache", r.pc}}
	switch r.id[0] {
	case '1', '2':
		cells = append(cells, namedCell{"nginx", r.nginx}, namedCell{"reference proxy", r.ref})
	case '3', '4', '5':
		cells = append(cells, namedCell{"reference proxy", r.ref})
	}
	if r.id == "5a" {
		cells = append(cells,
			namedCell{"pullcache upstream GET count ≥1", cell{ok: r.pc.v >= 1}},
			namedCell{"reference upstream GET count ≥1", cell{ok: r.ref.v >= 1}})
	}
	return cells
}

func TestParseWrk(t *testing.T) {
	out := "Running 1s test @ http://x\n  2 threads and 8 connections\n" +
		"PULLCACHE_BENCH requests=1234 bytes=5678900 duration_us=1000500 errors=0\n"
	r, err := parseWrk(out)
	if err != nil {
		t.Fatalf("parseWrk: %v", err)
	}
	want := wrkResult{requests: 1234, bytes: 5678900, dur: 1000500 * time.Microsecond}
	if r != want {
		t.Errorf("parseWrk = %+v, want %+v", r, want)
	}
}

func TestParseWrkMissingLine(t *testing.T) {
	if _, err := parseWrk("Running 1s test\n"); err == nil {
		t.Error("parseWrk without a report line: want an error")
	}
}

func TestSplitV2Path(t *testing.T) {
	tests := []struct{ path, name, ref, kind string }{
		{"/v2/library/big/blobs/sha256:ab", "library/big", "sha256:ab", "blobs"},
		{"/v2/a/b/c/manifests/v1", "a/b/c", "v1", "manifests"},
		{"/v2/", "", "", ""},
		{"/v2/library/x/tags/list", "", "", ""},
	}
	for _, tt := range tests {
		name, ref, kind := splitV2Path(tt.path)
		if got, want := [3]string{name, ref, kind}, [3]string{tt.name, tt.ref, tt.kind}; got != want {
			t.Errorf("splitV2Path(%q) = %q, want %q", tt.path, got, want)
		}
	}
}

func TestGetsCell(t *testing.T) {
	tests := []struct {
		gets []int
		v    float64
		text string
	}{
		{[]int{1, 1, 1}, 1, "1 (each of 3 blobs)"},
		{[]int{1, 32, 2}, 32, "1–32 (35 GETs for 3 blobs)"},
	}
	for _, tt := range tests {
		c := getsCell(tt.gets)
		if c.v != tt.v {
			t.Errorf("getsCell(%v).v = %v, want %v", tt.gets, c.v, tt.v)
		}
		if c.text != tt.text {
			t.Errorf("getsCell(%v).text = %q, want %q", tt.gets, c.text, tt.text)
		}
	}
}

func TestTargetMet(t *testing.T) {
	tests := []struct {
		t    target
		v    float64
		want bool
	}{
		{target{"≥", 0.95, "×"}, 0.95, true},
		{target{"≥", 0.95, "×"}, 0.94, false},
		{target{"≤", 100, " MiB"}, 101, false},
		{target{"=", 1, ""}, 1, true},
		{target{"=", 1, ""}, 2, false},
	}
	for _, tt := range tests {
		if got := tt.t.met(tt.v); got != tt.want {
			t.Errorf("%v met(%v) = %v, want %v", tt.t, tt.v, got, tt.want)
		}
	}
}

func TestParseKB(t *testing.T) {
	n, err := parseKB("   12345 kB")
	if err != nil {
		t.Fatalf("parseKB: %v", err)
	}
	if n != 12345*1024 {
		t.Errorf("parseKB = %d, want %d", n, 12345*1024)
	}
}

func TestParseRows(t *testing.T) {
	got, err := parseRows("2, 4")
	if err != nil {
		t.Fatalf("parseRows: %v", err)
	}
	if !slices.Equal(got, []int{2, 4}) {
		t.Errorf("parseRows = %v, want [2 4]", got)
	}
}

func TestParseRowsRejectsUnknownRow(t *testing.T) {
	if _, err := parseRows("9"); err == nil {
		t.Error("parseRows(\"9\"): want an error")
	}
}

// writeReports writes one report per body, each a table header, the rows
// given and any lines after the table, and returns their paths.
func writeReports(t *testing.T, bodies ...string) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i, body := range bodies {
		p := dir + "/r" + strconv.Itoa(i) + ".md"
		report := "- load average at start / end of the run: 1 2 3 / 4 5 6\n\n" +
			"| # | workload | metric | pullcache | nginx | reference proxy | ratio | target | result | notes |\n" +
			"|---|---|---|---|---|---|---|---|---|---|\n" + body
		if err := os.WriteFile(p, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// mergedLine merges the reports and returns the merged table's line for
// row id.
func mergedLine(t *testing.T, id string, paths []string) string {
	t.Helper()
	var out strings.Builder
	if err := mergeReports(paths, &out); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "| "+id+" |") {
			return l
		}
	}
	t.Fatalf("merged report has no row %s:\n%s", id, out.String())
	return ""
}

func TestMergeReports(t *testing.T) {
	var bodies []string
	for i, v := range []string{"1.20", "0.90", "1.10"} {
		bodies = append(bodies,
			"| 4a | cold pull | seconds | "+v+" | – | 2.00 | "+v+"× vs direct | ≤1.15× | X | n |\n"+
				"| 6 | memory | MiB | 2"+strconv.Itoa(i)+" | – | – | – | ≤100 MiB | X | n |\n")
	}
	paths := writeReports(t, bodies...)
	for id, want := range map[string]string{
		"4a": "| 4a | cold pull | seconds | 1.100 (0.900–1.200) | – | 2 (2–2) | 1.100× (0.900–1.200) vs direct | ≤1.15× | PASS |",
		"6":  "| 6 | memory | MiB | 21 (20–22) | – | – | – | ≤100 MiB | PASS |",
	} {
		if got := mergedLine(t, id, paths); got != want {
			t.Errorf("row %s:\n got %s\nwant %s", id, got, want)
		}
	}
}

// TestMergeJudges feeds rows that must not pass, and one that must.
func TestMergeJudges(t *testing.T) {
	tests := []struct {
		name, id string
		rows     []string // one per report
		want     string   // the merged result cell
	}{
		{"median fails its ratio target", "1a", []string{
			"| 1a | warm | MB/s | 1500 | 2000 | 1900 | 0.750× vs nginx | ≥0.95× | FAIL | |",
			"| 1a | warm | MB/s | 1500 | 1500 | 1900 | 1.000× vs nginx | ≥0.95× | PASS | |",
			"| 1a | warm | MB/s | 1500 | 2000 | 1900 | 0.750× vs nginx | ≥0.95× | FAIL | |",
		}, "FAIL"},
		{"no ratio: the raw figure is not judged against a ratio target", "1a", []string{
			"| 1a | warm | MB/s | 1500 | not measured | 1900 | – | ≥0.95× | not measured | |",
			"| 1a | warm | MB/s | 1500 | not measured | 1900 | – | ≥0.95× | not measured | |",
		}, "not measured"},
		{"a ratio missing in one run", "1a", []string{
			"| 1a | warm | MB/s | 1500 | 1000 | 1900 | 1.500× vs nginx | ≥0.95× | PASS | |",
			"| 1a | warm | MB/s | 1500 | not measured | 1900 | – | ≥0.95× | not measured | |",
			"| 1a | warm | MB/s | 1500 | 1000 | 1900 | 1.500× vs nginx | ≥0.95× | PASS | |",
		}, "not measured in 1 of 3 runs"},
		{"a row one run lacks", "2", []string{
			"| 2 | warm | req/s | 1500 | 1000 | 1900 | 1.500× vs nginx | ≥1× | PASS | |",
			"",
		}, "not measured in 1 of 2 runs"},
		{"nothing measured", "6", []string{
			"| 6 | memory | MiB | not measured | – | – | – | ≤100 MiB | not measured | |",
		}, "not measured"},
		{"a range is judged by its worse end", "5a", []string{
			"| 5a | herd | upstream GETs per blob | 1–32 (35 GETs for 3 blobs) | – | 32 (each of 3 blobs) | – | =1 | FAIL | |",
			"| 5a | herd | upstream GETs per blob | 1–2 (4 GETs for 3 blobs) | – | 32 (each of 3 blobs) | – | =1 | FAIL | |",
			"| 5a | herd | upstream GETs per blob | 1 (each of 3 blobs) | – | 32 (each of 3 blobs) | – | =1 | PASS | |",
		}, "FAIL"},
		{"a range on the good side", "5a", []string{
			"| 5a | herd | upstream GETs per blob | 1 (each of 3 blobs) | – | 32 (each of 3 blobs) | – | =1 | PASS | |",
		}, "PASS"},
		{"a range below a ≥ target", "x", []string{
			"| x | y | z | 3–9 | – | – | – | ≥5 | FAIL | |",
		}, "FAIL"},
		{"a range above a ≤ target", "x", []string{
			"| x | y | z | 3–9 | – | – | – | ≤5 | FAIL | |",
		}, "FAIL"},
		{"a range within a ≤ target", "x", []string{
			"| x | y | z | 3–4 | – | – | – | ≤5 | PASS | |",
		}, "PASS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bodies []string
			for _, r := range tt.rows {
				// Every report needs a row of its own to be a report.
				bodies = append(bodies, r+"\n| 0 | other | s | 1 | – | – | 1.000× vs x | ≤2× | PASS | |\n")
			}
			cells := tableCells(mergedLine(t, tt.id, writeReports(t, bodies...)))
			if got := cells[len(cells)-1]; got != tt.want {
				t.Errorf("result = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMergeRow8NeedsEvictions: row 8 passes only when every run evicted.
func TestMergeRow8NeedsEvictions(t *testing.T) {
	const row8 = "| 8 | churn | req/s | 5000 | – | – | 1.100× vs the same churn without eviction | ≥0.9× | PASS | |\n"
	tests := []struct {
		name  string
		needs []string // the need line of each report, "" for none
		want  string
	}{
		{"evictions in every run", []string{"- row 8 needs evictions ≥1: 30", "- row 8 needs evictions ≥1: 12"}, "PASS"},
		{"a run without evictions", []string{"- row 8 needs evictions ≥1: 30", "- row 8 needs evictions ≥1: 0"}, "FAIL (evictions 0 in run 2, needs ≥1)"},
		{"a run that did not count them", []string{"- row 8 needs evictions ≥1: 30", "- row 8 needs evictions ≥1: not measured"}, "not measured (evictions in run 2)"},
		{"a report without the line", []string{"- row 8 needs evictions ≥1: 30", ""}, "not measured (evictions in run 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bodies []string
			for _, n := range tt.needs {
				bodies = append(bodies, row8+"\n"+n+"\n")
			}
			cells := tableCells(mergedLine(t, "8", writeReports(t, bodies...)))
			if got := cells[len(cells)-1]; got != tt.want {
				t.Errorf("result = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRowNeeds: a run's own table fails row 8 without an eviction, and
// prints the need on the line -merge reads.
func TestRowNeeds(t *testing.T) {
	for _, tt := range []struct {
		evicted float64
		want    string
	}{{30, "PASS"}, {0, "FAIL (evictions 0, needs ≥1)"}} {
		r := &row{id: "8", target: target{"≥", 0.9, "×"}, pc: value(5000), ratio: value(1.1),
			needs: []need{{name: "evictions", c: value(tt.evicted), t: target{"≥", 1, ""}}}}
		if got := r.result(); got != tt.want {
			t.Errorf("evictions %v: result = %q, want %q", tt.evicted, got, tt.want)
		}
		var out strings.Builder
		(&report{rows: []*row{r}}).write(&out)
		if f := needLine.FindStringSubmatch(lastLine(out.String())); f == nil || f[4] != strconv.FormatFloat(tt.evicted, 'g', -1, 64) {
			t.Errorf("need line not read back: %q", lastLine(out.String()))
		}
	}
}

// TestRowJudgesTheNamedQuantity: a ratio target with no ratio is not
// judged on pullcache's raw figure.
func TestRowJudgesTheNamedQuantity(t *testing.T) {
	r := &row{target: target{"≥", 0.95, "×"}, pc: value(1500)}
	if got := r.result(); got != "not measured" {
		t.Errorf("result = %q, want not measured", got)
	}
	r = &row{target: target{"≤", 100, " MiB"}, pc: value(101), ratio: value(0.5)}
	if got := r.result(); got != "FAIL" {
		t.Errorf("absolute target on pullcache's 101 MiB: result = %q, want FAIL", got)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
