package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/cache"
)

// WarmOptions configure Warm.
type WarmOptions struct {
	// Mirror is the base URL of the mirror's registry API
	// (http://127.0.0.1:5000); required.
	Mirror string
	// Client makes the requests. Default http.DefaultClient.
	Client *http.Client
	// DefaultRegistry is the registry of names that carry none. Default
	// "docker.io".
	DefaultRegistry string
	// Platform, when set, warms only that platform of an index. Default:
	// every platform.
	Platform *v1.Platform
	// Concurrency is how many images are pulled at once. Default 4.
	Concurrency int
	// Progress, when set, is called as bytes arrive, from several
	// goroutines at once.
	Progress func(Progress)
	// Committed, when set, is called after each blob's last byte arrived
	// and returns once the mirror's fill of it, if one runs, has ended:
	// nil when it committed, its error when it failed (which fails the
	// image). A mirror sends a blob's bytes before its fill has made the
	// file durable and recorded it, so without it an image can be
	// reported warm while an export right after would miss a blob.
	// cache.Store.WaitFill of the store the mirror serves is one. Default:
	// none, nothing waits.
	Committed func(ctx context.Context, h v1.Hash) error
}

// Progress is the state of one image being warmed.
type Progress struct {
	Image       string
	Done, Total int64
	// Finished is set on the last call for the image; Err says how it ended.
	Finished bool
	Err      error
}

// WarmResult is how warming one image ended.
type WarmResult struct {
	Image  string `json:"image"`
	Digest string `json:"digest,omitempty"`
	Bytes  int64  `json:"bytes"`
	Error  string `json:"error,omitempty"`
}

// Warm pulls every image through the mirror — manifests, then every config
// and layer, all platforms or one — as a client would, so the mirror fills
// its cache with its own fills, verification and deduplication. Results
// are in the order of images.
func Warm(ctx context.Context, opts WarmOptions, images []string) []WarmResult {
	if opts.Client == nil {
		opts.Client = http.DefaultClient
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = 4
	}
	results := make([]WarmResult, len(images))
	sem := make(chan struct{}, opts.Concurrency)
	var wg sync.WaitGroup
	for i, img := range images {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = warmOne(ctx, opts, img)
		}()
	}
	wg.Wait()
	return results
}

// warmer pulls one image.
type warmer struct {
	opts  WarmOptions
	name  archive.Name
	image string
	done  int64
	total int64
}

func warmOne(ctx context.Context, opts WarmOptions, image string) WarmResult {
	w := &warmer{opts: opts, image: image}
	res := WarmResult{Image: image}
	digest, err := w.run(ctx)
	res.Digest, res.Bytes = digest, w.done
	if err != nil {
		res.Error = err.Error()
	}
	w.report(true, err)
	return res
}

func (w *warmer) run(ctx context.Context) (string, error) {
	var err error
	if w.name, err = archive.ParseName(w.image, w.opts.DefaultRegistry); err != nil {
		return "", err
	}
	top, err := w.manifest(ctx, w.name.Tag)
	if err != nil {
		return "", err
	}
	images, err := w.images(ctx, top)
	if err != nil {
		return top.Digest.String(), err
	}
	var blobs []cache.Descriptor
	for _, m := range images {
		blobs = append(blobs, m.Refs...)
	}
	for _, d := range blobs {
		w.total += d.Size
	}
	for _, d := range blobs {
		if err := w.blob(ctx, d); err != nil {
			return top.Digest.String(), err
		}
	}
	return top.Digest.String(), nil
}

// images returns the image manifests to pull: top itself, or the children
// of an index (those for the platform, when one is set).
func (w *warmer) images(ctx context.Context, top *cache.Manifest) ([]*cache.Manifest, error) {
	if !top.IsIndex() {
		return []*cache.Manifest{top}, nil
	}
	var out []*cache.Manifest
	for _, d := range top.Refs {
		if w.opts.Platform != nil && (d.Platform == nil || !d.Platform.Satisfies(*w.opts.Platform)) {
			continue
		}
		m, err := w.manifest(ctx, d.Digest.String())
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the index has no platform %s", w.opts.Platform)
	}
	return out, nil
}

func (w *warmer) url(kind, ref string) string {
	return fmt.Sprintf("%s/v2/%s/%s/%s?ns=%s", strings.TrimSuffix(w.opts.Mirror, "/"),
		w.name.Repository, kind, ref, url.QueryEscape(w.name.Registry))
}

func (w *warmer) get(ctx context.Context, kind, ref string, accept []string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url(kind, ref), nil)
	if err != nil {
		return nil, err
	}
	if len(accept) > 0 {
		req.Header.Set("Accept", strings.Join(accept, ", "))
	}
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s", kind, ref, mirrorError(resp))
	}
	return resp, nil
}

// manifest fetches a manifest by tag or digest; a manifest by digest is
// checked against it.
func (w *warmer) manifest(ctx context.Context, ref string) (*cache.Manifest, error) {
	resp, err := w.get(ctx, "manifests", ref, append(cache.ManifestTypes, string(types.OCIManifestSchema1)))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", ref, err)
	}
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	if strings.HasPrefix(ref, "sha256:") && h.String() != ref {
		return nil, fmt.Errorf("manifest %s: the mirror sent bytes hashing to %s", ref, h)
	}
	return cache.ParseManifest(b, resp.Header.Get("Content-Type"), h)
}

// blob pulls one blob through the mirror, counting its bytes.
func (w *warmer) blob(ctx context.Context, d cache.Descriptor) error {
	resp, err := w.get(ctx, "blobs", d.Digest.String(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(progressWriter{w}, resp.Body)
	if err == nil && n != d.Size {
		err = fmt.Errorf("blob %s: %d bytes, want %d", d.Digest, n, d.Size)
	}
	if err == nil && w.opts.Committed != nil {
		if cerr := w.opts.Committed(ctx, d.Digest); cerr != nil {
			err = fmt.Errorf("blob %s: not committed by the mirror: %w", d.Digest, cerr)
		}
	}
	return err
}

type progressWriter struct{ w *warmer }

func (p progressWriter) Write(b []byte) (int, error) {
	p.w.done += int64(len(b))
	p.w.report(false, nil)
	return len(b), nil
}

func (w *warmer) report(finished bool, err error) {
	if w.opts.Progress != nil {
		w.opts.Progress(Progress{Image: w.image, Done: w.done, Total: w.total, Finished: finished, Err: err})
	}
}

// mirrorError reads the OCI error body of a failed response, capped.
func mirrorError(resp *http.Response) string {
	var body struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err := jsonUnmarshal(b, &body); err == nil && len(body.Errors) > 0 {
		return fmt.Sprintf("%s %s: %s", resp.Status, body.Errors[0].Code, body.Errors[0].Message)
	}
	return resp.Status
}

// ErrWarmFailed says some images could not be warmed.
var ErrWarmFailed = errors.New("warm failed")
