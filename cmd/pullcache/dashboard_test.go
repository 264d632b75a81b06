package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const dashboardFile = "../../deploy/grafana/pullcache.json"

// promqlKeywords are PromQL words that are not metric names: aggregations,
// functions without their parenthesis here (by, on, ...), operators and
// modifiers.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
}

// promqlAggregations may be followed by by/without before their
// parenthesis ("sum by (le) (...)").
var promqlAggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "group": true, "stddev": true, "stdvar": true,
	"topk": true, "bottomk": true, "quantile": true, "count_values": true, "limitk": true, "limit_ratio": true,
}

// metricNames returns the metric names a PromQL expression selects: the
// identifiers outside label matchers, strings and range brackets that are
// neither a function or aggregation (followed by "(") nor a keyword, nor
// a label list of by/without/on/ignoring/group_left/group_right.
func metricNames(expr string) []string {
	var names []string
	depth := 0 // inside {...} or [...]
	labelList := false
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
			continue
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ')':
			labelList = false
		case depth == 0 && isIdentStart(c) && (i == 0 || !isIdentChar(expr[i-1])):
			j := i
			for j < len(expr) && isIdentChar(expr[j]) {
				j++
			}
			word := expr[i:j]
			next := strings.TrimLeft(expr[j:], " ")
			switch {
			case promqlKeywords[strings.ToLower(word)]:
				labelList = word != "and" && word != "or" && word != "unless" && word != "bool" && word != "offset"
			case labelList, strings.HasPrefix(next, "("), promqlAggregations[word]:
			default:
				names = append(names, word)
			}
			i = j
			continue
		}
		i++
	}
	return names
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || ('0' <= c && c <= '9') }

// skipString returns the index just past the string starting at i.
func skipString(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		if s[j] == '\\' && q != '`' {
			j++
			continue
		}
		if s[j] == q {
			return j + 1
		}
	}
	return len(s)
}

func TestMetricNamesOfPromQL(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`sum(rate(a_total{job=~"$job",kind="x"}[5m]))`, []string{"a_total"}},
		{`sum by (le, route) (rate(b_bucket{x="y(z)"}[$__rate_interval]))`, []string{"b_bucket"}},
		{`histogram_quantile(0.99, sum without (instance) (rate(c_bucket[1m])))`, []string{"c_bucket"}},
		{`sum(x) / on (instance) group_left (kind) (y > 0) and z offset 5m`, []string{"x", "y", "z"}},
		{`max(up) or vector(0)`, []string{"up"}},
		{`a{l="}"} + b`, []string{"a", "b"}},
	}
	for _, tc := range tests {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// dashboardQueries reads every target's expression of the dashboard.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

// TestDashboardQueriesExportedMetrics starts a server as serve does, pulls
// an image through it twice (a miss, then hits), and checks that every
// metric the Grafana dashboard queries is one /metrics exports.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	want := map[string][]string{} // metric name → queries naming it
	for _, e := range dashboardQueries(t) {
		for _, n := range metricNames(e) {
			want[n] = append(want[n], e)
		}
	}
	if len(want) < 15 {
		t.Fatalf("only %d metric names found in the dashboard: %v", len(want), want)
	}
	addr := serveForTest(t)
	pullThrough(t, addr, "library/app", "v1")
	pullThrough(t, addr, "library/app", "v1")
	// Some series appear only once work done in the background has run:
	// prefetch, and the store's housekeeping, whose first tick (10 s after
	// start) sets the disk gauges. Scrape until every name is there, for
	// up to 30 s.
	var missing []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		exported := scrapeNames(t, "http://"+addr+"/metrics")
		missing = missing[:0]
		for n := range want {
			if !exported[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		<-time.After(100 * time.Millisecond)
	}
	sort.Strings(missing)
	for _, n := range missing {
		t.Errorf("the dashboard queries %s, which /metrics does not export (in %q)", n, want[n][0])
	}
}

// scrapeNames GETs a Prometheus text exposition and returns the sample
// names it can hold: each family's name, and a histogram's or summary's
// _bucket, _sum and _count.
func scrapeNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		names[f[2]] = true
		if f[3] == "histogram" || f[3] == "summary" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f[2]+s] = true
			}
		}
	}
	return names
}

// serveForTest runs `pullcache serve` in this process on a loopback port
// with a test upstream, and stops it (as SIGTERM would) when t ends.
func serveForTest(t *testing.T) string {
	t.Helper()
	up, _ := newTestUpstream(t)
	// Made before the cleanup below is registered, so it is removed after
	// the server has stopped.
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--data", data,
			"--upstream", "docker.io=" + up.URL, "--min-free", "1MiB"}, io.Discard, pw)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d", code)
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if a, ok := listeningOn(sc.Text()); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return a
	case code := <-done:
		t.Fatalf("serve exited %d before listening", code)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not log listening within 30s")
	}
	return ""
}

// listeningOn finds the address in serve's "listening" log line.
func listeningOn(line string) (string, bool) {
	if !strings.Contains(line, "msg=listening") {
		return "", false
	}
	for _, f := range strings.Fields(line) {
		if a, ok := strings.CutPrefix(f, "addr="); ok {
			return a, true
		}
	}
	return "", false
}

// pullThrough GETs repo:tag's manifest and its config blob through the
// mirror.
func pullThrough(t *testing.T, addr, repo, tag string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
	}
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || m.Config.Digest == "" {
		t.Fatalf("manifest %s:%s: %s, %v", repo, tag, resp.Status, err)
	}
	resp, err = http.Get("http://" + addr + "/v2/" + repo + "/blobs/" + m.Config.Digest)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("config blob: %s", resp.Status)
	}
}
