package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/upstream"
)

// Upstream is what a member needs of a registry client: the proxy's
// Upstream, upstream.Source.
type Upstream = upstream.Source

// Wrap returns up for registry with blobs and manifests asked of their
// owner first: a blob of its digest's owner, a manifest by tag of the
// tag's owner (which revalidates it once for the cluster), a manifest by
// digest of the digest's owner. What this member owns, what a peer asked
// for, and what the owner cannot answer go to up. Tag lists, referrers and
// HEADs of blobs go to up directly.
func (n *Node) Wrap(registry string, up Upstream) Upstream {
	return &peered{Upstream: up, n: n, registry: registry}
}

type peered struct {
	Upstream
	n        *Node
	registry string
}

// maxManifestBytes bounds a manifest taken from a member, as the
// reference registry bounds the ones it accepts.
const maxManifestBytes = 4 << 20

func manifestKey(registry, repo, ref string) string {
	if strings.Contains(ref, ":") { // a digest; tags hold no colon
		return BlobKey(ref)
	}
	return TagKey(registry, repo, ref)
}

// owner returns the member to ask for key, or "" when this member should
// ask the upstream itself.
func (p *peered) owner(ctx context.Context, key string) string {
	if hopped(ctx) {
		return ""
	}
	if o := p.n.Owners(key)[0]; o != p.n.self {
		return o
	}
	return ""
}

func (p *peered) GetManifest(ctx context.Context, repo, ref string, accept []string) (*upstream.Manifest, error) {
	if o := p.owner(ctx, manifestKey(p.registry, repo, ref)); o != "" {
		m, err := p.manifestFrom(ctx, o, repo, ref, accept)
		p.n.metrics.peerFetches.WithLabelValues(o, "manifest", outcome(err)).Inc()
		if err == nil || upstream.KindOf(err) == upstream.NotFound {
			return m, err
		}
		p.n.log.Debug("manifest from its owner failed; asking the upstream", "member", o, "repo", repo, "ref", ref, "err", err)
	}
	return p.Upstream.GetManifest(ctx, repo, ref, accept)
}

func (p *peered) manifestFrom(ctx context.Context, m, repo, ref string, accept []string) (*upstream.Manifest, error) {
	resp, err := p.n.ask(ctx, m, http.MethodGet, p.registry, "/v2/"+repo+"/manifests/"+ref,
		http.Header{"Accept": {strings.Join(accept, ", ")}}, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestBytes+1))
	if err != nil {
		return nil, &peerError{member: m, err: err}
	}
	if len(b) > maxManifestBytes {
		return nil, &peerError{member: m, status: resp.StatusCode, err: fmt.Errorf("%w: manifest over %d bytes", errRefused, maxManifestBytes)}
	}
	sum := sha256.Sum256(b)
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	// The member sent what it has under that name; by digest, it must be
	// exactly those bytes.
	if strings.Contains(ref, ":") && ref != d.String() {
		return nil, &peerError{member: m, status: resp.StatusCode, err: fmt.Errorf("%w: manifest %s has digest %s", errRefused, ref, d)}
	}
	return &upstream.Manifest{Bytes: b, MediaType: mediaType(resp.Header.Get("Content-Type")), Digest: d}, nil
}

func (p *peered) HeadManifest(ctx context.Context, repo, ref string, accept []string) (upstream.Descriptor, error) {
	if o := p.owner(ctx, manifestKey(p.registry, repo, ref)); o != "" {
		d, err := p.headFrom(ctx, o, repo, ref, accept)
		p.n.metrics.peerFetches.WithLabelValues(o, "manifest", outcome(err)).Inc()
		if err == nil || upstream.KindOf(err) == upstream.NotFound {
			return d, err
		}
		p.n.log.Debug("manifest HEAD at its owner failed; asking the upstream", "member", o, "repo", repo, "ref", ref, "err", err)
	}
	return p.Upstream.HeadManifest(ctx, repo, ref, accept)
}

func (p *peered) headFrom(ctx context.Context, m, repo, ref string, accept []string) (upstream.Descriptor, error) {
	resp, err := p.n.ask(ctx, m, http.MethodHead, p.registry, "/v2/"+repo+"/manifests/"+ref,
		http.Header{"Accept": {strings.Join(accept, ", ")}}, http.StatusOK)
	if err != nil {
		return upstream.Descriptor{}, err
	}
	resp.Body.Close()
	h, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return upstream.Descriptor{}, &peerError{member: m, status: resp.StatusCode, err: fmt.Errorf("%w: no digest: %v", errRefused, err)}
	}
	return upstream.Descriptor{Digest: h, MediaType: mediaType(resp.Header.Get("Content-Type")), Size: resp.ContentLength}, nil
}

func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.TrimSpace(mt)
}

// GetBlob streams the blob from its owner, resuming from the next member
// in hashing order if the owner fails mid-way (see blobReader). A blob a
// peer asked this member for, or that this member owns, comes from up.
func (p *peered) GetBlob(ctx context.Context, repo string, h v1.Hash, offset int64) (io.ReadCloser, int64, error) {
	if p.n.tracked(p.n.hops, h.String()) {
		return p.Upstream.GetBlob(ctx, repo, h, offset)
	}
	r := &blobReader{p: p, ctx: ctx, repo: repo, h: h, key: BlobKey(h.String()), off: offset, size: -1,
		tried: map[string]bool{}}
	if err := r.open(); err != nil {
		return nil, 0, err
	}
	if r.from == "" {
		// Straight from the upstream: nothing of ours to resume.
		return r.body, r.size, nil
	}
	return r, r.size, nil
}
