#!/usr/bin/env bash
# Refreshes the console's screenshots in docs/console/ from a run of its
# browser test (needs chromium and crane: ./scripts/install-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/console
PULLCACHE_E2E=1 PULLCACHE_SCREENSHOTS="$PWD/docs/console" \
	go test -count=1 -timeout 10m -run '^TestConsoleInABrowser$' ./test/e2e/
ls docs/console
