# Build a static binary, then ship it alone on a minimal non-root base.
#
#   docker build -t pullcache .
#
# Build arguments (all optional):
#   GO_IMAGE       the build stage's base: a Go toolchain at /usr/local/go, go on PATH
#   RUNTIME_IMAGE  the final stage's base: CA certificates and a "nonroot" user (65532)
#   GOPROXY        the Go module proxy the build downloads modules from
#   VERSION        what `pullcache version` prints
# Every RUN is in exec form, so the build stage needs no shell: any image
# holding a Go toolchain will do.
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
ARG GOPROXY
RUN ["go", "mod", "download"]
COPY . .
ARG VERSION=dev
# GOFLAGS is the one place a build argument reaches go's command line
# without a shell (ENV expands ${VERSION}; RUN's exec form does not).
ENV GOFLAGS="-trimpath '-ldflags=-s -w -X main.version=${VERSION}'"
RUN ["go", "build", "-o", "/out/pullcache", "./cmd/pullcache"]
# An empty directory for /data (WORKDIR creates it): the final base has no
# shell to mkdir with.
WORKDIR /out/data

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/pullcache /pullcache
# Owned by the user that runs the mirror, so a fresh volume mounted there
# is writable.
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot:nonroot
EXPOSE 5000
VOLUME /data
ENV PULLCACHE_DATA=/data
# `pullcache health` asks the running server's /healthz (the base has no
# shell or curl to do it with).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/pullcache", "health"]
ENTRYPOINT ["/pullcache"]
CMD ["serve"]
