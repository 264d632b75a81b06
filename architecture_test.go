// Package pullcache_test holds checks of the module's shape.
package pullcache_test

import (
	"go/build"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/pullcache/pullcache"

// allowed lists, for each package, the module's packages it may import:
// dependencies flow cmd → proxy → {cache, upstream, auth} and cmd → console →
// admin → {cache, archive}, and only cmd reads config. stats is a leaf
// both proxy (which fills it) and admin (which reports it) import, since
// they may not import each other; auth (logins and access rules) is a leaf
// proxy imports, and cmd adapts to the console's sign-in. cluster (members,
// ownership, peer fills) decorates the upstream clients cmd gives the
// proxy, so it imports neither proxy nor cache. health (readiness and
// draining) is a leaf cmd wires the store's and upstreams' states into. A
// package missing here fails the test, so a new one is a decision, not an
// accident.
var allowed = map[string][]string{
	"cmd/pullcache": {"config", "proxy", "cache", "upstream", "admin", "archive", "stats", "console", "auth", "cluster", "health", "cache/blobs/s3", "sharedstore"},
	"proxy":         {"cache", "upstream", "stats", "auth"},
	"stats":         {},
	"auth":          {},
	"cache":         {"cache/blobs", "cache/blobs/local"},
	"upstream":      {},
	"config":        {},
	"admin":         {"cache", "archive", "stats"},
	"console":       {"admin", "stats"},
	"archive":       {},
	// The blob-storage seam and its contract suite: implementations import
	// the seam, the seam imports nothing of the module.
	"cache/blobs":           {},
	"cache/blobs/blobstest": {"cache/blobs"},
	"cache/blobs/local":     {"cache/blobs"},
	"cache/blobs/s3":        {"cache/blobs"},
	"cache/blobs/s3/s3test": {},
	"cluster":               {"upstream"},
	"health":                {},
	// The shared bucket's upstream decorators, layered by cmd like
	// cluster's: neither proxy nor the cache's store.
	"sharedstore": {"cache/blobs", "cache/blobs/s3", "upstream"},
}

func TestDependenciesFlowOneWay(t *testing.T) {
	for pkg, ok := range allowed {
		for _, imp := range moduleImports(t, pkg) {
			if !slices.Contains(ok, imp) {
				t.Errorf("%s imports %s; allowed: %v", pkg, imp, ok)
			}
		}
	}
}

func TestEveryPackageIsListed(t *testing.T) {
	dirs, err := filepath.Glob("*/")
	if err != nil {
		t.Fatal(err)
	}
	for _, pattern := range []string{"*", "cmd/*"} {
		matches, _ := filepath.Glob(pattern)
		dirs = append(dirs, matches...)
	}
	for _, d := range dirs {
		if _, listed := allowed[d]; listed || skipDir(d) {
			continue
		}
		if p, err := build.ImportDir(d, 0); err == nil && p.Name != "" && len(p.GoFiles) > 0 {
			t.Errorf("package %s is not in the dependency rules of architecture_test.go", d)
		}
	}
}

func skipDir(d string) bool {
	return d == "bench" || strings.HasPrefix(d, "test") || strings.HasPrefix(d, ".")
}

func moduleImports(t *testing.T, dir string) []string {
	t.Helper()
	p, err := build.ImportDir(dir, 0)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	var out []string
	for _, imp := range p.Imports {
		if rest, ok := strings.CutPrefix(imp, module+"/"); ok {
			out = append(out, rest)
		}
	}
	return out
}
