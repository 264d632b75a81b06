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
// baseline; judged is the value the target applies to (the ratio unless
// the target is absolute).
type row struct {
	id, workload, metric string
	unit                 string // printf verb for the three server columns
	pc, nginx, ref       cell
	ratio                cell
	baseline             string // what ratio divides by, e.g. "nginx"
	judged               *cell
	target               target
	note                 string
}

// result is PASS, FAIL or "not measured".
func (r *row) result() string {
	j := r.judged
	if j == nil {
		j = &r.ratio
	}
	switch {
	case !j.ok:
		return "not measured"
	case r.target.met(j.v):
		return "PASS"
	default:
		return "FAIL"
	}
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

// ratioOf returns a/b when both were measured.
func ratioOf(a, b cell) cell {
	if !a.ok || !b.ok || b.v == 0 {
		return cell{}
	}
	return value(a.v / b.v)
}
