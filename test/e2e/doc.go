// Package e2e holds pullcache's end-to-end tests: real registry clients
// (skopeo, crane, regctl, podman, containerd's ctr and a Docker daemon of the
// tests' own) pull through a real pullcache binary from an in-process
// upstream registry on 127.0.0.1, and the tests check digests and what
// reached the upstream; the project's container image is built from its
// Dockerfile and run.
//
// The tests run only with PULLCACHE_E2E=1 (./scripts/test.sh sets it); without
// it they skip, so `go test ./...` stays fast and needs no client binaries.
// With it, a missing client is a failure: ./scripts/install-test-deps.sh
// installs them. The Docker Engine is the exception: the machine has it or
// not, and the Docker tests skip, saying so, without it (or without root).
// The package has no non-test code and nothing imports it.
package e2e
