package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Manifest is a manifest exactly as the registry sent it.
type Manifest struct {
	Bytes     []byte
	MediaType string
	Digest    v1.Hash
}

// Descriptor is what a HEAD tells of a manifest.
type Descriptor struct {
	Digest    v1.Hash
	MediaType string
	Size      int64
}

func acceptHeader(accept []string) http.Header {
	return http.Header{"Accept": {strings.Join(accept, ", ")}}
}

// GetManifest fetches a manifest by tag or digest, accepting the given media
// types. Its digest is computed from the bytes (see manifestDigest): it
// must be ref when ref is a digest, and match the registry's
// Docker-Content-Digest when it sends one for a tag.
func (r *Registry) GetManifest(ctx context.Context, repo, ref string, accept []string) (*Manifest, error) {
	resp, err := r.do(ctx, http.MethodGet, repo, apiPath(repo, "manifests", ref), acceptHeader(accept), http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > maxManifestSize {
		return nil, r.wrap("GET manifest", repo, "", fmt.Errorf("%w: manifest of %d bytes exceeds %d", errInvalid, resp.ContentLength, maxManifestSize))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		return nil, r.wrap("GET manifest", repo, "", err)
	}
	if len(b) > maxManifestSize {
		return nil, r.wrap("GET manifest", repo, "", fmt.Errorf("%w: manifest exceeds %d bytes", errInvalid, maxManifestSize))
	}
	h, err := manifestDigest(b, ref, resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return nil, r.wrap("GET manifest", repo, "", err)
	}
	return &Manifest{Bytes: b, MediaType: mediaType(resp.Header.Get("Content-Type")), Digest: h}, nil
}

// manifestDigest is the digest manifest bytes b are known by. Fetched by
// digest, b must hash to it with its own algorithm (sha512 included), and
// that digest is the one kept and served: distribution-spec "Content
// Digests" has the client verify against the digest it asked for, and a
// registry's Docker-Content-Digest is often sha256 whatever was asked.
// Fetched by tag, it is b's sha256, which must match the registry's
// Docker-Content-Digest when that is a sha256 one.
func manifestDigest(b []byte, ref, header string) (v1.Hash, error) {
	if want, err := v1.NewHash(ref); err == nil {
		hasher, err := v1.Hasher(want.Algorithm)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("%w: manifest %s: %v", errInvalid, want, err)
		}
		hasher.Write(b)
		if got := hex.EncodeToString(hasher.Sum(nil)); got != want.Hex {
			return v1.Hash{}, fmt.Errorf("%w: manifest bytes hash to %s:%s, not %s", errInvalid, want.Algorithm, got, want)
		}
		return want, nil
	}
	sum := sha256.Sum256(b)
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if hd, err := v1.NewHash(header); err == nil && hd.Algorithm == "sha256" && hd != got {
		return v1.Hash{}, fmt.Errorf("%w: manifest bytes hash to %s, registry said %s", errInvalid, got, hd)
	}
	return got, nil
}

func mediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.TrimSpace(mt)
}

// HeadManifest asks what ref points at without fetching it (Docker Hub does
// not count HEADs against the pull rate limit).
func (r *Registry) HeadManifest(ctx context.Context, repo, ref string, accept []string) (Descriptor, error) {
	resp, err := r.do(ctx, http.MethodHead, repo, apiPath(repo, "manifests", ref), acceptHeader(accept), http.StatusOK)
	if err != nil {
		return Descriptor{}, err
	}
	resp.Body.Close()
	h, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return Descriptor{}, r.wrap("HEAD manifest", repo, "", fmt.Errorf("%w: no usable Docker-Content-Digest: %v", errInvalid, err))
	}
	return Descriptor{Digest: h, MediaType: mediaType(resp.Header.Get("Content-Type")), Size: resp.ContentLength}, nil
}

// GetBlob opens a blob's bytes from offset on (with a Range request when
// offset > 0) and returns them with the blob's whole size as the registry
// announced it (-1 if it did not). The caller verifies and closes the body.
func (r *Registry) GetBlob(ctx context.Context, repo string, h v1.Hash, offset int64) (io.ReadCloser, int64, error) {
	var header http.Header
	if offset > 0 {
		header = http.Header{"Range": {fmt.Sprintf("bytes=%d-", offset)}}
	}
	resp, err := r.do(ctx, http.MethodGet, repo, apiPath(repo, "blobs", h.String()), header, http.StatusOK, http.StatusPartialContent)
	if offset > 0 && statusOf(err) == http.StatusRequestedRangeNotSatisfiable {
		// Some registries take no open-ended range: fetch it whole and
		// skip what the caller has.
		resp, err = r.do(ctx, http.MethodGet, repo, apiPath(repo, "blobs", h.String()), nil, http.StatusOK)
	}
	if err != nil {
		return nil, 0, err
	}
	if offset == 0 || resp.StatusCode == http.StatusPartialContent {
		return resp.Body, blobSize(resp), nil
	}
	// The registry ignored the Range: skip what the caller has.
	if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
		resp.Body.Close()
		return nil, 0, r.wrap("GET blob", repo, "", err)
	}
	return resp.Body, resp.ContentLength, nil
}

// statusOf is the HTTP status of a failed upstream response, or 0.
func statusOf(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

// blobSize is the whole size of a blob from a 200's Content-Length or a
// 206's Content-Range ("bytes a-b/total").
func blobSize(resp *http.Response) int64 {
	if resp.StatusCode != http.StatusPartialContent {
		return resp.ContentLength
	}
	_, total, ok := strings.Cut(resp.Header.Get("Content-Range"), "/")
	if !ok {
		return -1
	}
	return SizeFromHeader(total)
}

// HeadBlob asks whether repo has the blob, and its size.
func (r *Registry) HeadBlob(ctx context.Context, repo string, h v1.Hash) (int64, error) {
	resp, err := r.do(ctx, http.MethodHead, repo, apiPath(repo, "blobs", h.String()), nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.ContentLength, nil
}

// maxTagPages bounds how many pages of a tag list are followed.
const maxTagPages = 100

// Tags fetches the repository's whole tag list, following Link pagination.
func (r *Registry) Tags(ctx context.Context, repo string) ([]string, error) {
	return allPages(apiPath(repo, "tags", "list"), maxTagPages, func(pageURL string) ([]string, string, error) {
		return r.tagPage(ctx, repo, pageURL)
	})
}

// allPages fetches a list from first on, following each page's Link to the
// next, at most maxPages pages.
func allPages[T any](first string, maxPages int, page func(pageURL string) ([]T, string, error)) ([]T, error) {
	all := []T{}
	next := first
	for n := 0; next != "" && n < maxPages; n++ {
		items, link, err := page(next)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		next = link
	}
	return all, nil
}

func (r *Registry) tagPage(ctx context.Context, repo, pageURL string) ([]string, string, error) {
	resp, err := r.do(ctx, http.MethodGet, repo, pageURL, nil, http.StatusOK)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	var body struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body); err != nil {
		return nil, "", r.wrap("GET tags", repo, "", fmt.Errorf("%w: tag list: %v", errInvalid, err))
	}
	return body.Tags, nextLink(resp), nil
}

// apiPath is the path of a registry API object.
func apiPath(repo, kind, ref string) string { return "/v2/" + repo + "/" + kind + "/" + ref }

// nextLink is the path and query of the `rel="next"` target of a Link
// header (RFC 8288: comma-separated links, each `<target>; params`): the
// next page is asked of the same endpoint, whatever host it names.
func nextLink(resp *http.Response) string {
	for _, link := range strings.Split(resp.Header.Get("Link"), ",") {
		target, params, ok := strings.Cut(link, ";")
		if !ok || !strings.Contains(params, `rel="next"`) {
			continue
		}
		u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
		if err != nil || !strings.HasPrefix(u.Path, "/v2/") {
			return ""
		}
		return u.RequestURI()
	}
	return ""
}

// SizeFromHeader parses a Content-Length value; -1 when absent or bad.
func SizeFromHeader(v string) int64 {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}
