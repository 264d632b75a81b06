package proxy

import (
	"context"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/stats"
	"github.com/pullcache/pullcache/upstream"
)

// countedUpstream tells the statistics of every request sent upstream and
// of every byte read, so the console can show what the mirror saved. It
// embeds the Upstream so abilities added there pass through unchanged.
type countedUpstream struct {
	Upstream
	st *stats.Recorder
}

func countUpstream(up Upstream, st *stats.Recorder) Upstream {
	if st == nil {
		return up
	}
	return countedUpstream{Upstream: up, st: st}
}

func (c countedUpstream) GetManifest(ctx context.Context, repo, ref string, accept []string) (*upstream.Manifest, error) {
	m, err := c.Upstream.GetManifest(ctx, repo, ref, accept)
	var n int64
	if err == nil {
		n = int64(len(m.Bytes))
	}
	c.st.UpstreamGet("manifest", n)
	return m, err
}

func (c countedUpstream) HeadManifest(ctx context.Context, repo, ref string, accept []string) (upstream.Descriptor, error) {
	c.st.UpstreamHead()
	return c.Upstream.HeadManifest(ctx, repo, ref, accept)
}

func (c countedUpstream) GetBlob(ctx context.Context, repo string, h v1.Hash, offset int64) (io.ReadCloser, int64, error) {
	c.st.UpstreamGet("blob", 0)
	rc, size, err := c.Upstream.GetBlob(ctx, repo, h, offset)
	if err != nil {
		return nil, size, err
	}
	return countingBody{ReadCloser: rc, st: c.st}, size, nil
}

func (c countedUpstream) HeadBlob(ctx context.Context, repo string, h v1.Hash) (int64, error) {
	c.st.UpstreamHead()
	return c.Upstream.HeadBlob(ctx, repo, h)
}

func (c countedUpstream) Tags(ctx context.Context, repo string) ([]string, error) {
	c.st.UpstreamGet("tags", 0)
	return c.Upstream.Tags(ctx, repo)
}

// countingBody reports bytes as the fill reads them.
type countingBody struct {
	io.ReadCloser
	st *stats.Recorder
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.st.Fetched(int64(n))
	return n, err
}
