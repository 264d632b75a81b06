#!/usr/bin/env bash
# The project's test command: static checks, unit and integration tests with
# the race detector, short fuzz runs, then the end-to-end tests that drive real
# registry clients (skopeo, crane, regctl, podman, containerd) and a headless
# Chromium (the web console) through a real pullcache binary, and a smoke run of the benchmark harness (bench/). Exits
# non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

step() { printf '\n==> %s  (at %ds)\n' "$*" "$((SECONDS - start))"; }
fail() {
	printf '\nFAIL: %s\n' "$*" >&2
	exit 1
}

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || fail "go not found on PATH"
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
export PATH="$PATH:$gobin:/usr/sbin:/sbin"

# Every go test step runs with -json through test/summary, which prints the
# output as it comes (all of it with -v, else failed tests' only, as go test
# does) and records the step's events in $records/STEP.json; the last step
# reports every skipped test and each fuzz target's executions from them.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
records="$work/records"
mkdir -p "$records"
summary="$work/summary"
# gotest STEP [-v] ARGS...: go test -json ARGS, shown and recorded as STEP.
gotest() {
	local name="$1" v=()
	shift
	if [ "${1:-}" = -v ]; then
		v=(-v)
		shift
	fi
	go test -json "$@" 2>&1 | "$summary" stream "${v[@]}" -o "$records/$name.json"
}

step "install test dependencies"
./scripts/install-test-deps.sh --bench || fail "installing test dependencies"

step "gofmt"
unformatted="$(gofmt -l .)"
[ -z "$unformatted" ] || fail "gofmt -l reports unformatted files (run gofmt -w):
$unformatted"

step "go vet"
go vet ./... || fail "go vet"

step "staticcheck"
staticcheck ./... || fail "staticcheck"

step "build test/summary (the skip and fuzz summaries)"
go build -o "$summary" ./test/summary || fail "go build ./test/summary"

step "go test -race (unit and integration; includes the dependency-direction test)"
# The e2e package skips itself without PULLCACHE_E2E; make sure it does here.
(
	unset PULLCACHE_E2E
	gotest unit -race -count=1 ./...
) || fail "go test -race"

# fuzz: every Fuzz* target in the module, 10 s each. `go test -list` prints a
# package's matching names followed by its "ok <pkg>" line; packages without
# tests print "? <pkg> [no test files]". Zero targets is fine.
step "fuzz (10s per target)"
fuzz_list="$(env -u PULLCACHE_E2E go test -list '^Fuzz' ./...)" || fail "go test -list '^Fuzz' ./...:
$fuzz_list"
targets=()
names=()
while IFS= read -r line; do
	case "$line" in
	Fuzz*) names+=("$line") ;;
	ok*)
		pkg="$(awk '{print $2}' <<<"$line")"
		for n in "${names[@]}"; do targets+=("$pkg $n"); done
		names=()
		;;
	esac
done <<<"$fuzz_list"
# fuzz_once PKG NAME: fuzz one target for 10 s, recorded as
# fuzz.PKG.NAME for the executions summary. Go 1.26's fuzzing
# coordinator can end a run at its -fuzztime deadline with a bare "context
# deadline exceeded" when its workers are starved of CPU
# (https://go.dev/issue/75804, fixed in Go 1.27): no input failed and none is
# written to testdata/fuzz. Such a run is repeated once; a failure that names
# an input, or a second failure, fails the suite. -fuzzminimizetime=0: by
# default each input that finds new code is minimized for up to 60 s, which
# stops the count of executions and leaves a 10 s run almost nothing; a
# failing input is still written, whole.
fuzz_once() {
	local pkg="$1" name="$2" rec rc
	rec="fuzz.${pkg//\//_}.$name"
	for attempt in 1 2; do
		rc=0
		gotest "$rec" -v -run '^$' -fuzz "^${name}\$" -fuzztime=10s -fuzzminimizetime=0 "$pkg" || rc=$?
		[ "$rc" -eq 0 ] && return 0
		if [ "$attempt" -eq 1 ] && grep -q 'context deadline exceeded' "$records/$rec.json" &&
			! grep -q 'Failing input written to' "$records/$rec.json"; then
			echo "fuzz $name: the coordinator's deadline race (no failing input); running it once more"
			continue
		fi
		return 1
	done
}
if [ "${#targets[@]}" -eq 0 ]; then
	echo "no fuzz targets"
fi
for target in "${targets[@]}"; do
	pkg="${target%% *}"
	name="${target#* }"
	echo "--- fuzz $pkg $name"
	fuzz_once "$pkg" "$name" || fail "fuzz $pkg $name"
done

step "Helm chart (deploy/helm/check: helm lint, helm template, strict Kubernetes types, pullcache config check)"
# A module of its own, so k8s.io/api stays out of the main go.mod.
(cd deploy/helm/check && go vet ./... && gotest helm -count=1 ./...) || fail "Helm chart checks"

step "end-to-end tests (real clients through a real pullcache)"
# Screenshots of the console's browser tests go to test-output/ (the
# test's artifact directory; scripts/screenshots.sh refreshes docs/).
mkdir -p test-output
PULLCACHE_E2E=1 gotest e2e -v -count=1 -timeout 20m -artifacts -outputdir "$PWD/test-output" ./test/e2e/... || fail "end-to-end tests"

step "benchmark smoke run (quick mode: the harness works end to end; no speed is asserted)"
PULLCACHE_BENCH_SMOKE=1 gotest bench -v -count=1 -timeout 10m -run '^TestSmoke$' ./bench/ || fail "benchmark smoke run"

# Last, so that these are the run's last lines. Under CI=true a skip not on
# test/summary's allow-list, or a fuzz target below 1,000 executions, fails.
step "summary: skipped tests and fuzz executions"
"$summary" report "$records" || fail "skipped tests or fuzz targets that barely ran (above)"

printf '\nPASS: all checks (%ds)\n' "$((SECONDS - start))"
