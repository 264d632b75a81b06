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

func TestMergeReports(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i, v := range []string{"1.20", "0.90", "1.10"} {
		p := dir + "/r" + strconv.Itoa(i) + ".md"
		report := "- load average at start / end of the run: 1 2 3 / 4 5 6\n\n" +
			"| # | workload | metric | pullcache | nginx | reference proxy | ratio | target | result | notes |\n" +
			"|---|---|---|---|---|---|---|---|---|---|\n" +
			"| 4a | cold pull | seconds | " + v + " | – | 2.00 | " + v + "× vs direct | ≤1.15× | X | n |\n" +
			"| 6 | memory | MiB | 2" + strconv.Itoa(i) + " | – | – | – | ≤100 MiB | X | n |\n"
		if err := os.WriteFile(p, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	var out strings.Builder
	if err := mergeReports(paths, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 4a | cold pull | seconds | 1.100 (0.900–1.200) | – | 2 (2–2) | 1.100× (0.900–1.200) vs direct | ≤1.15× | PASS |",
		"| 6 | memory | MiB | 21 (20–22) | – | – | – | ≤100 MiB | PASS |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("merged report lacks %q:\n%s", want, out.String())
		}
	}
}
