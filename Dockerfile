# syntax=docker/dockerfile:1
# Build a static binary, then ship it alone on a minimal non-root base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/pullcache ./cmd/pullcache \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pullcache /pullcache
# The base has no shell to mkdir with: copy an empty directory, owned by the
# user that runs the mirror, so a fresh volume mounted there is writable.
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot:nonroot
EXPOSE 5000
VOLUME /data
ENV PULLCACHE_DATA=/data
ENTRYPOINT ["/pullcache"]
CMD ["serve"]
