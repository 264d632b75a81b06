package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// mergedRow is one table row as it appears in several reports.
type mergedRow struct {
	id, workload, metric, target string
	cols                         [4][]string // pullcache, nginx, reference proxy, ratio; one per report
}

// mergeReports reads the reports written by -o and prints one table whose
// cells are the median over the reports with their spread (min–max), and
// whose result judges the median against the target; then every run's
// notes and detail lines.
func mergeReports(paths []string, w io.Writer) error {
	var order []string
	rows := map[string]*mergedRow{}
	var loads, notes []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "- load average at start / end of the run: "); ok {
				loads = append(loads, fmt.Sprintf("%s: %s", p, rest))
			}
			if rest, ok := strings.CutPrefix(line, "- row "); ok {
				notes = append(notes, fmt.Sprintf("row %s (%s)", rest, p))
			}
			f := tableCells(line)
			if len(f) != 10 || f[0] == "#" || strings.HasPrefix(f[0], "---") {
				continue
			}
			r := rows[f[0]]
			if r == nil {
				r = &mergedRow{id: f[0], workload: f[1], metric: f[2], target: f[7]}
				rows[f[0]] = r
				order = append(order, f[0])
			}
			for i, c := range []string{f[3], f[4], f[5], f[6]} {
				r.cols[i] = append(r.cols[i], c)
			}
			if f[9] != "" {
				notes = append(notes, fmt.Sprintf("%s (%s): %s", f[0], p, f[9]))
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("merge: no table rows in %s", p)
		}
	}
	fmt.Fprintf(w, "\n## pullcache bench, %d runs merged: median (min–max)\n\n", len(paths))
	for _, l := range loads {
		fmt.Fprintf(w, "- load average at start / end, %s\n", l)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| # | workload | metric | pullcache | nginx | reference proxy | ratio | target | result (median) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, id := range order {
		r := rows[id]
		var cells [4]string
		var med [4]cell
		for i := range cells {
			cells[i], med[i] = spread(r.cols[i])
		}
		judged := med[3]
		if !judged.ok {
			judged = med[0]
		}
		result := "not measured"
		if t, ok := parseTarget(r.target); ok && judged.ok {
			result = "FAIL"
			if t.met(judged.v) {
				result = "PASS"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.id, r.workload, r.metric, cells[0], cells[1], cells[2], cells[3], r.target, result)
	}
	// Each run's notes and details, as they were: the medians above do
	// not cover them.
	fmt.Fprintln(w)
	slices.Sort(notes)
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	return nil
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

var leadingNumber = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?`)

// spread formats the median of the cells' leading numbers with their
// range, keeping any suffix of the first cell ("×", " vs nginx").
func spread(cs []string) (string, cell) {
	var xs []float64
	suffix := ""
	for _, c := range cs {
		m := leadingNumber.FindString(c)
		if m == "" {
			continue
		}
		v, err := strconv.ParseFloat(m, 64)
		if err != nil {
			continue
		}
		if len(xs) == 0 {
			suffix = strings.TrimPrefix(c, m)
			if i := strings.Index(suffix, " ("); i >= 0 {
				suffix = suffix[:i]
			}
		}
		xs = append(xs, v)
	}
	if len(xs) == 0 {
		if len(cs) > 0 {
			return cs[0], cell{}
		}
		return "–", cell{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	unit, rest, _ := strings.Cut(suffix, " ")
	if rest != "" {
		rest = " " + rest
	}
	text := fmt.Sprintf("%s%s (%s–%s)%s", num(med), unit, num(s[0]), num(s[len(s)-1]), rest)
	if len(s) != len(cs) {
		text += fmt.Sprintf(", %d of %d runs", len(s), len(cs))
	}
	return text, value(med)
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
