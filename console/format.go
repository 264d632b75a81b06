package console

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

var funcs = template.FuncMap{
	"bytes":   humanBytes,
	"pct":     func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
	"ago":     ago,
	"short":   shortDigest,
	"join":    strings.Join,
	"count":   humanCount,
	"percent": percent,
	"stamp":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"pulled":  pulled,
	"created": created,
}

// pulled is ago for an optional time: "never" when not set.
func pulled(now time.Time, t *time.Time) string {
	if t == nil {
		return "never"
	}
	return ago(now, *t)
}

// created is an artifact's org.opencontainers.image.created annotation,
// empty without one.
func created(annotations map[string]string) string {
	return annotations["org.opencontainers.image.created"]
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// humanBytes is n in binary units, e.g. "3.2 MiB" (sizes here are never
// negative; a negative n reads as 0).
func humanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

// humanCount is n with thousands separated: 1 234 567.
func humanCount(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteRune('\u202f')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// percent is done of total as a whole percentage, 0 when total is unknown.
func percent(done, total int64) int64 {
	if total <= 0 {
		return 0
	}
	return min(100*done/total, 100)
}

// ago says how long before now t was: "never" for the zero time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + (-d).Round(time.Second).String()
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// shortDigest is sha256:0123456789ab.
func shortDigest(d string) string {
	if alg, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return alg + ":" + hex[:12]
	}
	return d
}
