#!/usr/bin/env bash
# Installs the registry clients the end-to-end tests drive (skopeo, podman,
# containerd/ctr, crun, crane, regctl, staticcheck, docker-compose), the reference registry
# (an upstream of the referrers and conformance tests), the S3-compatible
# server versitygw (the blob tier's tests), the OCI
# distribution-spec conformance suite and the headless Chromium the console's
# browser tests drive, when they are missing, and downloads the module's Go
# modules into the module cache. With --bench it also installs what bench/
# compares against (nginx, wrk, hyperfine). Idempotent: prints one line per
# thing it installs and nothing when everything is present.
set -euo pipefail

orig_path="$PATH"
bench=0
for arg in "$@"; do
	case "$arg" in
	--bench) bench=1 ;;
	-h | --help)
		echo "usage: $0 [--bench]"
		exit 0
		;;
	*)
		echo "install-test-deps: unknown argument: $arg" >&2
		exit 2
		;;
	esac
done

# Fresh machines have Go in /usr/local/go without it necessarily being on PATH.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
	echo "install-test-deps: go not found on PATH" >&2
	exit 1
fi
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
export PATH="$PATH:$gobin"
# nginx lives in /usr/sbin, which is not on every user's PATH.
export PATH="$PATH:/usr/sbin:/sbin"

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi

# have CMD: is CMD runnable?
have() { command -v "$1" >/dev/null 2>&1; }

# quietly CMD...: run CMD with its output kept aside, shown only if it fails.
quietly() {
	local log rc=0
	log="$(mktemp)"
	"$@" >"$log" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		cat "$log" >&2
		echo "install-test-deps: failed ($rc): $*" >&2
		rm -f "$log"
		exit 1
	fi
	rm -f "$log"
}

apt_updated=0
# apt_install CMD PKG: install Debian package PKG unless CMD is already present.
apt_install() {
	local cmd="$1" pkg="$2"
	have "$cmd" && return 0
	if [ "$apt_updated" -eq 0 ]; then
		quietly $sudo apt-get update
		apt_updated=1
	fi
	echo "install-test-deps: apt-get install $pkg"
	quietly $sudo env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends "$pkg"
	if ! have "$cmd"; then
		echo "install-test-deps: $pkg installed but $cmd is still not on PATH" >&2
		exit 1
	fi
}

# go_install CMD MODULE@VERSION: go install MODULE unless CMD is already present.
go_install() {
	local cmd="$1" mod="$2"
	have "$cmd" && return 0
	echo "install-test-deps: go install $mod"
	# Outside the module, and without the caller's GOFLAGS (-mod=vendor would
	# break it), so the project's go.mod is neither read nor touched.
	(cd / && quietly env GOFLAGS= go install "$mod")
	if ! have "$cmd"; then
		echo "install-test-deps: $mod installed but $cmd is not in $gobin" >&2
		exit 1
	fi
}

apt_install skopeo skopeo
apt_install podman podman
apt_install containerd containerd # also ships ctr
apt_install crun crun
apt_install docker-compose docker-compose # v1: deploy/compose's test runs it
# The console's browser tests drive headless Chromium; where it cannot be
# installed they skip and say so.
if ! have chromium; then
	( apt_install chromium chromium ) || echo "install-test-deps: chromium could not be installed; the browser tests will skip"
fi
go_install crane github.com/google/go-containerregistry/cmd/crane@v0.22.1
go_install regctl github.com/regclient/regclient/cmd/regctl@v0.11.7
go_install staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2
go_install registry github.com/distribution/distribution/v3/cmd/registry@v3.1.2
# The S3-compatible server the blob tier's tests start (cache/blobs/s3).
go_install versitygw github.com/versity/versitygw/cmd/versitygw@v1.8.0
# The Helm chart's tests (deploy/helm/check) lint and render it with helm.
go_install helm helm.sh/helm/v4/cmd/helm@v4.3.2
# The OCI distribution-spec conformance suite, which the pull conformance
# test runs through the mirror.
go_install conformance github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111

# The container-image test builds the Dockerfile with this machine's module
# cache served as its Go module proxy (the build cannot reach the internet):
# fill it with every module go.mod names, not only those compiled so far.
(cd "$(dirname "$0")/.." && quietly env GOFLAGS= go mod download)

if [ "$bench" -eq 1 ]; then
	apt_install nginx nginx
	apt_install wrk wrk
	apt_install hyperfine hyperfine
fi

case ":$orig_path:" in
*":$gobin:"*) ;;
*) echo "install-test-deps: note: add $gobin to PATH (export PATH=\"\$PATH:$gobin\")" ;;
esac
