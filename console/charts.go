package console

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/pullcache/pullcache/stats"
)

// series is one line of a chart.
type series struct {
	Label string
	Class string // CSS class giving its colour
	Value func(stats.Point) int64
}

const (
	chartW, chartH = 600, 160
	padL, padB     = 4, 18
)

// chart draws points as an inline SVG of one line per series, scaled to
// the largest value, with the time span under it. Only numbers and fixed
// labels go into it.
func chart(title string, points []stats.Point, ss []series, format func(int64) string, span string) template.HTML {
	var top int64 = 1
	for _, p := range points {
		for _, s := range ss {
			top = max(top, s.Value(p))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" preserveAspectRatio="none">`,
		chartW, chartH, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<title>%s</title>`, template.HTMLEscapeString(title))
	plotH := float64(chartH - padB)
	for _, frac := range []float64{0, 0.5, 1} {
		y := plotH - frac*(plotH-8)
		fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, padL, y, chartW, y)
	}
	n := len(points)
	step := float64(chartW-padL) / float64(max(n-1, 1))
	for _, s := range ss {
		var pts []string
		for i, p := range points {
			x := float64(padL) + float64(i)*step
			y := plotH - float64(s.Value(p))/float64(top)*(plotH-8)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		fmt.Fprintf(&b, `<polyline class="line %s" points="%s"/>`, s.Class, strings.Join(pts, " "))
	}
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="12">%s</text>`, padL+2, template.HTMLEscapeString(format(top)))
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">%s</text>`, padL, chartH-4, template.HTMLEscapeString(span))
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="end">now</text>`, chartW-2, chartH-4)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// legend lists the series of a chart.
func legend(ss []series) template.HTML {
	var b strings.Builder
	b.WriteString(`<ul class="legend">`)
	for _, s := range ss {
		fmt.Fprintf(&b, `<li><span class="swatch %s"></span>%s</li>`, s.Class, template.HTMLEscapeString(s.Label))
	}
	b.WriteString(`</ul>`)
	return template.HTML(b.String())
}

var (
	requestSeries = []series{
		{"from cache", "cache", func(p stats.Point) int64 { return p.Hits + p.Stale }},
		{"from upstream", "upstream", func(p stats.Point) int64 { return p.Misses }},
	}
	byteSeries = []series{
		{"served from cache", "cache", func(p stats.Point) int64 { return p.BytesFromCache }},
		{"fetched upstream", "upstream", func(p stats.Point) int64 { return p.BytesFetched }},
	}
)

// chartSet is the overview's charts for one span.
type chartSet struct {
	Span                    string
	Requests, Bytes, Legend template.HTML
	BytesLegend             template.HTML
}

func charts(st []stats.Point, span string) chartSet {
	label := "1 hour ago"
	if span == "day" {
		label = "24 hours ago"
	}
	count := func(n int64) string { return humanCount(n) + " req" }
	return chartSet{
		Span:        span,
		Requests:    chart("Manifest and blob answers per "+unit(span), st, requestSeries, count, label),
		Bytes:       chart("Bytes per "+unit(span), st, byteSeries, humanBytes, label),
		Legend:      legend(requestSeries),
		BytesLegend: legend(byteSeries),
	}
}

func unit(span string) string {
	if span == "day" {
		return "hour"
	}
	return "minute"
}
