package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// cell is one measured value. A cell that was not measured says why in
// missing; text, when set, replaces the formatted number.
type cell struct {
	v       float64
	ok      bool
	text    string
	missing string
}

func value(v float64) cell { return cell{v: v, ok: true} }

func (c cell) format(f string) string {
	switch {
	case c.text != "":
		return c.text
	case c.ok:
		return fmt.Sprintf(f, c.v)
	case c.missing != "":
		return c.missing
	default:
		return "–"
	}
}

// target is a bound a value must meet, such as ≥0.95 or ≤100.
type target struct {
	op    string // "≥", "≤" or "="
	bound float64
	unit  string // appended when printed: "×", " MiB", …
}

func (t target) String() string { return fmt.Sprintf("%s%g%s", t.op, t.bound, t.unit) }

// onRatio says which quantity the target names: a bound in "×" applies to
// the ratio, any other to pullcache's own figure. One rule for a run's
// table and for the merge of several, so both judge the same number.
func (t target) onRatio() bool { return t.unit == "×" }

// worse is whichever of a and b is further on the failing side of t.
func (t target) worse(a, b float64) float64 {
	switch t.op {
	case "≥":
		return min(a, b)
	case "≤":
		return max(a, b)
	}
	if math.Abs(a-t.bound) >= math.Abs(b-t.bound) {
		return a
	}
	return b
}

func (t target) met(v float64) bool {
	switch t.op {
	case "≥":
		return v >= t.bound
	case "≤":
		return v <= t.bound
	default:
		return math.Abs(v-t.bound) < 1e-9
	}
}

// row is one line of the results table. ratio is pullcache over the row's
// baseline; the target applies to the ratio or to pc (see onRatio).
type row struct {
	id, workload, metric string
	unit                 string // printf verb for the three server columns
	pc, nginx, ref       cell
	ratio                cell
	baseline             string // what ratio divides by, e.g. "nginx"
	target               target
	needs                []need
	note                 string
}

// need is a condition without which a row's figure does not measure what
// the row claims (row 8 without evictions measured no eviction). It is
// printed on a line of its own so that -merge can judge it too.
type need struct {
	name string
	c    cell
	t    target
}

// judged is the cell the row's target applies to.
func (r *row) judged() cell {
	if r.target.onRatio() {
		return r.ratio
	}
	return r.pc
}

// result is PASS, FAIL or "not measured"; an unmet need fails the row.
func (r *row) result() string {
	j := r.judged()
	if !j.ok {
		return "not measured"
	}
	for _, n := range r.needs {
		if !n.c.ok {
			return "not measured"
		}
		if !n.t.met(n.c.v) {
			return fmt.Sprintf("FAIL (%s %g, needs %s)", n.name, n.c.v, n.t)
		}
	}
	if r.target.met(j.v) {
		return "PASS"
	}
	return "FAIL"
}

// report is the outcome of one run.
type report struct {
	mode    string
	machine []string
	rows    []*row
	details []string // measurements behind the table, one line each
	errs    []string
}

func (rep *report) add(r *row) *row {
	rep.rows = append(rep.rows, r)
	return r
}

func (rep *report) errorf(format string, args ...any) {
	rep.errs = append(rep.errs, fmt.Sprintf(format, args...))
}

// write prints the machine, the table (Markdown) and every error.
func (rep *report) write(w io.Writer) {
	fmt.Fprintf(w, "\n## pullcache bench (%s mode)\n\n", rep.mode)
	for _, m := range rep.machine {
		fmt.Fprintf(w, "- %s\n", m)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| # | workload | metric | pullcache | nginx | reference proxy | ratio | target | result | notes |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rep.rows {
		// Three decimals below 10×, so that a ratio just under its bound
		// does not print as the bound itself.
		ratio := r.ratio.format("%.3f×")
		if r.ratio.ok && r.ratio.v >= 10 {
			ratio = r.ratio.format("%.1f×")
		}
		if r.ratio.ok && r.baseline != "" {
			ratio += " vs " + r.baseline
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.id, r.workload, r.metric,
			r.pc.format(r.unit), r.nginx.format(r.unit), r.ref.format(r.unit),
			ratio, r.target, r.result(), r.note)
	}
	writeNeeds(w, rep.rows)
	if len(rep.details) > 0 {
		fmt.Fprintln(w)
		for _, d := range rep.details {
			fmt.Fprintf(w, "- %s\n", d)
		}
	}
	if len(rep.errs) > 0 {
		fmt.Fprintf(w, "\nErrors (%d):\n", len(rep.errs))
		for _, e := range rep.errs {
			fmt.Fprintf(w, "- %s\n", strings.ReplaceAll(e, "\n", " "))
		}
	}
}

// needLinePrefix starts the line a need is printed on under the table,
// and read back by -merge: "- row 8 needs evictions ≥1: 30".
const needLinePrefix = "- row "

// writeNeeds prints every row's needs, one line each.
func writeNeeds(w io.Writer, rows []*row) {
	var lines []string
	for _, r := range rows {
		for _, n := range r.needs {
			lines = append(lines, fmt.Sprintf("%s%s needs %s %s: %s", needLinePrefix, r.id, n.name, n.t, n.c.format("%g")))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	}
}

// ratioOf returns a/b when both were measured.
func ratioOf(a, b cell) cell {
	if !a.ok || !b.ok || b.v == 0 {
		return cell{}
	}
	return value(a.v / b.v)
}
