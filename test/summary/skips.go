package main

const module = "github.com/pullcache/pullcache"

// allowance is a skip CI accepts: in a step, in a package, of one test or
// (test "") of every test in it.
type allowance struct {
	step, pkg, test string
	why             string
}

// allowances is the short list of skips that are no missing check because
// the same test runs in another step of scripts/test.sh. Nothing else
// belongs here: CI runs as root with a Docker Engine, Chromium and loop
// devices, so a Docker, browser or mount test that skips there lost a check.
func allowances() []allowance {
	return []allowance{
		// Skipped without PULLCACHE_E2E=1; the e2e step runs them.
		{step: "unit", pkg: module + "/test/e2e", why: "they run in the e2e step"},
		// Skipped without PULLCACHE_BENCH_SMOKE=1; the bench step runs it.
		{step: "unit", pkg: module + "/bench", test: "TestSmoke", why: "it runs in the bench step"},
	}
}

// allowedSkip says whether sk is on the list, and why.
func allowedSkip(sk skipped) (string, bool) {
	for _, a := range allowances() {
		if a.step == sk.step && a.pkg == sk.pkg && (a.test == "" || a.test == sk.test) {
			return a.why, true
		}
	}
	return "", false
}
