package upstream

import (
	"context"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Source is what a registry client answers, as the proxy asks it: a
// Registry is one, and so is each decorator put in front of one (a
// cluster's peers, a shared bucket), which is why it is said here, once,
// where all of them can name it.
type Source interface {
	GetManifest(ctx context.Context, repo, ref string, accept []string) (*Manifest, error)
	HeadManifest(ctx context.Context, repo, ref string, accept []string) (Descriptor, error)
	// GetBlob opens the blob from offset (a Range when offset > 0) and
	// returns the blob's whole size (-1 when unknown).
	GetBlob(ctx context.Context, repo string, h v1.Hash, offset int64) (io.ReadCloser, int64, error)
	HeadBlob(ctx context.Context, repo string, h v1.Hash) (int64, error)
	Tags(ctx context.Context, repo string) ([]string, error)
	// Referrers lists the manifests whose subject is the digest, from the
	// referrers API or the referrers tag schema (empty when neither).
	Referrers(ctx context.Context, repo string, subject v1.Hash) (*Referrers, error)
}

var _ Source = (*Registry)(nil)
