package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The columns of a merged row that hold figures.
const (
	colPullcache = iota
	colNginx
	colRef
	colRatio
)

// mergedRow is one table row as it appears in several reports. cols and
// needs hold one entry per report, "" where a report lacks the row.
type mergedRow struct {
	id, workload, metric, target string
	cols                         [4][]string // pullcache, nginx, reference proxy, ratio
	needs                        map[string][]string
}

// needLine reads a need as writeNeeds prints it: row id, name, target, value.
var needLine = regexp.MustCompile(`^- row (.+) needs (\S+) ((?:≥|≤|=)\S+): (.*)$`)

// merger collects the reports' rows in first-seen order.
type merger struct {
	runs         int
	order        []string
	rows         map[string]*mergedRow
	loads, notes []string
}

// mergeReports reads the reports written by -o and prints one table whose
// cells are the median over the reports with their spread (min–max), and
// whose result judges the median of the quantity the target names; then
// every run's notes and detail lines.
func mergeReports(paths []string, w io.Writer) error {
	m := &merger{rows: map[string]*mergedRow{}}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		if err := m.add(p, string(b)); err != nil {
			return err
		}
	}
	m.write(w)
	return nil
}

// add reads one report, the runs-th.
func (m *merger) add(path, text string) error {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, "- load average at start / end of the run: "); ok {
			m.loads = append(m.loads, fmt.Sprintf("%s: %s", path, rest))
		}
		if f := needLine.FindStringSubmatch(line); f != nil {
			r := m.row(f[1])
			key := f[2] + " " + f[3]
			if r.needs[key] == nil {
				r.needs[key] = make([]string, m.runs+1)
			}
			r.needs[key][m.runs] = f[4]
			continue
		}
		if rest, ok := strings.CutPrefix(line, "- row "); ok {
			m.notes = append(m.notes, fmt.Sprintf("row %s (%s)", rest, path))
		}
		f := tableCells(line)
		if len(f) != 10 || f[0] == "#" || strings.HasPrefix(f[0], "---") {
			continue
		}
		r := m.row(f[0])
		r.workload, r.metric, r.target = f[1], f[2], f[7]
		for i, c := range f[3:7] {
			r.cols[i][m.runs] = c
		}
		if f[9] != "" {
			m.notes = append(m.notes, fmt.Sprintf("%s (%s): %s", f[0], path, f[9]))
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("merge: no table rows in %s", path)
	}
	m.runs++
	m.grow()
	return nil
}

// row returns the row with id, made on first sight.
func (m *merger) row(id string) *mergedRow {
	r := m.rows[id]
	if r == nil {
		r = &mergedRow{id: id, needs: map[string][]string{}}
		for i := range r.cols {
			r.cols[i] = make([]string, m.runs+1)
		}
		m.rows[id] = r
		m.order = append(m.order, id)
	}
	return r
}

// grow gives every row a slot for the next report, so that a report
// without a row leaves "" in its place.
func (m *merger) grow() {
	for _, r := range m.rows {
		for i := range r.cols {
			r.cols[i] = append(r.cols[i], "")[:m.runs+1]
		}
		for k := range r.needs {
			r.needs[k] = append(r.needs[k], "")[:m.runs+1]
		}
	}
}

// write prints the merged table, the needs and the notes.
func (m *merger) write(w io.Writer) {
	fmt.Fprintf(w, "\n## pullcache bench, %d runs merged: median (min–max)\n\n", m.runs)
	for _, l := range m.loads {
		fmt.Fprintf(w, "- load average at start / end, %s\n", l)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| # | workload | metric | pullcache | nginx | reference proxy | ratio | target | result (median) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	var needs []string
	for _, id := range m.order {
		r := m.rows[id]
		t, _ := parseTarget(r.target)
		var cells [4]string
		for i := range cells {
			cells[i] = spread(r.cols[i][:m.runs], t)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.id, r.workload, r.metric, cells[0], cells[1], cells[2], cells[3], r.target, r.result(m.runs))
		for _, k := range slices.Sorted(maps.Keys(r.needs)) {
			needs = append(needs, fmt.Sprintf("row %s needs %s, per run: %s", r.id, k, strings.Join(r.needs[k][:m.runs], " / ")))
		}
	}
	// Each run's notes and details, as they were: the medians above do
	// not cover them.
	fmt.Fprintln(w)
	slices.Sort(m.notes)
	for _, n := range append(needs, m.notes...) {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

// result judges the median, over the runs, of the quantity the target
// names. A run that did not measure it, or did not meet one of the row's
// needs, keeps the row from passing.
func (r *mergedRow) result(runs int) string {
	t, ok := parseTarget(r.target)
	if !ok {
		return "no target"
	}
	col := colPullcache
	if t.onRatio() {
		col = colRatio
	}
	vs := figures(r.cols[col][:runs], t)
	switch {
	case len(vs) == 0:
		return "not measured"
	case len(vs) < runs:
		return fmt.Sprintf("not measured in %d of %d runs", runs-len(vs), runs)
	}
	if why := r.unmetNeed(runs); why != "" {
		return why
	}
	if t.met(median(vs)) {
		return "PASS"
	}
	return "FAIL"
}

// unmetNeed says which need a run did not meet or did not report, or "".
func (r *mergedRow) unmetNeed(runs int) string {
	for _, k := range slices.Sorted(maps.Keys(r.needs)) {
		name, bound, _ := strings.Cut(k, " ")
		t, ok := parseTarget(bound)
		if !ok {
			return "not measured (" + k + ")"
		}
		for i, c := range r.needs[k][:runs] {
			v, ok := figure(c, t)
			if !ok {
				return fmt.Sprintf("not measured (%s in run %d)", name, i+1)
			}
			if !t.met(v) {
				return fmt.Sprintf("FAIL (%s %s in run %d, needs %s)", name, num(v), i+1, bound)
			}
		}
	}
	return ""
}

// tableCells splits a Markdown table line into its trimmed cells.
func tableCells(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") {
		return nil
	}
	f := strings.Split(line[1:len(line)-1], " | ")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

// leadingFigure is a cell's number, or its range "lo–hi" as printed for
// counts that differ between blobs or herds ("1–32 (35 GETs for 3 blobs)").
var leadingFigure = regexp.MustCompile(`^(-?[0-9]+(?:\.[0-9]+)?)(?:–(-?[0-9]+(?:\.[0-9]+)?))?`)

// figure reads a cell's value: its number, or for a range the end that is
// worse for t's direction. A cell without a leading number is no figure.
func figure(c string, t target) (float64, bool) {
	m := leadingFigure.FindStringSubmatch(c)
	if m == nil {
		return 0, false
	}
	lo, err := strconv.ParseFloat(m[1], 64)
	if err != nil || m[2] == "" {
		return lo, err == nil
	}
	hi, err := strconv.ParseFloat(m[2], 64)
	if err != nil {
		return 0, false
	}
	if t.op == "" {
		return max(lo, hi), true
	}
	return t.worse(lo, hi), true
}

// figures reads every cell that holds a figure.
func figures(cs []string, t target) []float64 {
	var xs []float64
	for _, c := range cs {
		if v, ok := figure(c, t); ok {
			xs = append(xs, v)
		}
	}
	return xs
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// spread formats the median of the cells' figures with their range,
// keeping the unit and any words after it of the first cell that has one
// ("×", " vs nginx").
func spread(cs []string, t target) string {
	xs := figures(cs, t)
	if len(xs) == 0 {
		for _, c := range cs {
			if c != "" {
				return c
			}
		}
		return "–"
	}
	suffix := ""
	for _, c := range cs {
		if m := leadingFigure.FindString(c); m != "" {
			suffix, _, _ = strings.Cut(strings.TrimPrefix(c, m), " (")
			break
		}
	}
	unit, rest, _ := strings.Cut(suffix, " ")
	if rest != "" {
		rest = " " + rest
	}
	text := fmt.Sprintf("%s%s (%s–%s)%s", num(median(xs)), unit, num(slices.Min(xs)), num(slices.Max(xs)), rest)
	if len(xs) != len(cs) {
		text += fmt.Sprintf(", %d of %d runs", len(xs), len(cs))
	}
	return text
}

// num prints a value with three significant digits, like the table does.
func num(v float64) string {
	switch {
	case v == float64(int64(v)):
		return strconv.FormatInt(int64(v), 10)
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

var leadingNumber = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?`)

// parseTarget reads a target as printed ("≤1.15×", "≥0.9×", "=1", "≤100 MiB").
func parseTarget(s string) (target, bool) {
	for _, op := range []string{"≤", "≥", "="} {
		rest, ok := strings.CutPrefix(s, op)
		if !ok {
			continue
		}
		m := leadingNumber.FindString(rest)
		v, err := strconv.ParseFloat(m, 64)
		if err != nil {
			return target{}, false
		}
		return target{op: op, bound: v, unit: strings.TrimPrefix(rest, m)}, true
	}
	return target{}, false
}
