package proxy

import (
	"context"
	"io"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/upstream"
)

// offlineUpstream stands in for every registry in offline mode: nothing
// leaves the machine, and what is not cached is unknown at once.
type offlineUpstream struct{}

func offlineErr(code, what string) error {
	return newError(http.StatusNotFound, code, what+" is not cached, and this mirror is offline")
}

func (offlineUpstream) GetManifest(context.Context, string, string, []string) (*upstream.Manifest, error) {
	return nil, offlineErr(CodeManifestUnknown, "manifest")
}

func (offlineUpstream) HeadManifest(context.Context, string, string, []string) (upstream.Descriptor, error) {
	return upstream.Descriptor{}, offlineErr(CodeManifestUnknown, "manifest")
}

func (offlineUpstream) GetBlob(context.Context, string, v1.Hash, int64) (io.ReadCloser, int64, error) {
	return nil, 0, offlineErr(CodeBlobUnknown, "blob")
}

func (offlineUpstream) HeadBlob(context.Context, string, v1.Hash) (int64, error) {
	return 0, offlineErr(CodeBlobUnknown, "blob")
}

func (offlineUpstream) Tags(context.Context, string) ([]string, error) {
	return nil, offlineErr(CodeNameUnknown, "repository")
}

func (offlineUpstream) Referrers(context.Context, string, v1.Hash) (*upstream.Referrers, error) {
	return nil, offlineErr(CodeManifestUnknown, "referrers list")
}
