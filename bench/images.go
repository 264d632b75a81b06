package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Media types of the Docker image manifest v2 schema 2, the format most of
// Docker Hub serves.
const (
	mediaManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaConfig   = "application/vnd.docker.container.image.v1+json"
	mediaLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	// acceptManifests is what clients send: Docker v2 and OCI manifests.
	acceptManifests = mediaManifest + ", application/vnd.oci.image.manifest.v1+json"
)

// blob is a content-addressed file on disk, named by its digest in the
// blobs directory that nginx serves.
type blob struct {
	Path      string `json:"-"`
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`
	Digest    string `json:"digest"`
}

// image is an image pushed to the upstream: repository, tag, manifest bytes
// and the blobs the manifest references (config first).
type image struct {
	Repo           string // e.g. "library/big"
	Tag            string
	Manifest       []byte
	ManifestDigest string
	Config         blob
	Layers         []blob
}

// size is the total size of the image's blobs.
func (im *image) size() int64 {
	var n int64
	for _, b := range im.blobs() {
		n += b.Size
	}
	return n
}

// blobs returns the config followed by the layers.
func (im *image) blobs() []blob { return append([]blob{im.Config}, im.Layers...) }

// imageSpec describes an image to generate: one layer per size.
type imageSpec struct {
	repo       string
	layerSizes []int64 // bytes of random file content per layer
}

// buildImage writes the layers and config of spec into blobDir and returns
// the image with its manifest. Layer contents are random (incompressible)
// and deterministic per repository, so no two images share a layer.
func buildImage(blobDir string, spec imageSpec) (*image, error) {
	im := &image{Repo: spec.repo, Tag: "v1"}
	diffIDs := make([]string, 0, len(spec.layerSizes))
	for i, size := range spec.layerSizes {
		l, diffID, err := writeLayer(blobDir, size, seedFor(spec.repo, i))
		if err != nil {
			return nil, fmt.Errorf("%s layer %d: %w", spec.repo, i, err)
		}
		im.Layers = append(im.Layers, l)
		diffIDs = append(diffIDs, diffID)
	}
	cfg, err := writeConfig(blobDir, diffIDs)
	if err != nil {
		return nil, fmt.Errorf("%s config: %w", spec.repo, err)
	}
	im.Config = cfg
	im.Manifest, err = json.Marshal(struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        blob   `json:"config"`
		Layers        []blob `json:"layers"`
	}{2, mediaManifest, im.Config, im.Layers})
	if err != nil {
		return nil, fmt.Errorf("%s manifest: %w", spec.repo, err)
	}
	im.ManifestDigest = digestOf(im.Manifest)
	return im, nil
}

func seedFor(repo string, layer int) uint64 {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", repo, layer)))
	return binary.LittleEndian.Uint64(sum[:8])
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func hexDigest(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

// writeLayer writes a gzipped tar holding one file of size random bytes. The
// gzip stream uses stored (uncompressed) blocks: the data is random, so
// compressing would only burn CPU. It returns the blob and its diff ID.
func writeLayer(blobDir string, size int64, seed uint64) (blob, string, error) {
	tmp, err := os.CreateTemp(blobDir, "layer-*")
	if err != nil {
		return blob{}, "", fmt.Errorf("create: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename below
	defer tmp.Close()

	compressed := sha256.New()
	counter := &countWriter{}
	gz, err := gzip.NewWriterLevel(io.MultiWriter(tmp, compressed, counter), gzip.NoCompression)
	if err != nil {
		return blob{}, "", fmt.Errorf("gzip: %w", err)
	}
	uncompressed := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(gz, uncompressed))
	hdr := &tar.Header{Name: "data.bin", Mode: 0o644, Size: size, Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return blob{}, "", fmt.Errorf("tar header: %w", err)
	}
	if _, err := io.CopyN(tw, rand.NewChaCha8(seed32(seed)), size); err != nil {
		return blob{}, "", fmt.Errorf("write data: %w", err)
	}
	for _, c := range []io.Closer{tw, gz, tmp} {
		if err := c.Close(); err != nil {
			return blob{}, "", fmt.Errorf("finish layer: %w", err)
		}
	}
	b := blob{MediaType: mediaLayer, Size: counter.n, Digest: hexDigest(compressed)}
	b.Path = filepath.Join(blobDir, b.Digest)
	if err := os.Rename(tmp.Name(), b.Path); err != nil {
		return blob{}, "", fmt.Errorf("rename: %w", err)
	}
	return b, hexDigest(uncompressed), nil
}

func seed32(seed uint64) [32]byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return s
}

// writeConfig writes a minimal image config listing diffIDs.
func writeConfig(blobDir string, diffIDs []string) (blob, error) {
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return blob{}, fmt.Errorf("marshal: %w", err)
	}
	b := blob{MediaType: mediaConfig, Size: int64(len(cfg)), Digest: digestOf(cfg)}
	b.Path = filepath.Join(blobDir, b.Digest)
	if err := os.WriteFile(b.Path, cfg, 0o644); err != nil {
		return blob{}, fmt.Errorf("write: %w", err)
	}
	return b, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// pushImage uploads the blobs of im (monolithic uploads streamed from disk)
// and then its manifest to the registry at base.
func pushImage(ctx context.Context, client *http.Client, base string, im *image) error {
	for _, b := range im.blobs() {
		if err := pushBlob(ctx, client, base, im.Repo, b); err != nil {
			return fmt.Errorf("push %s blob %s: %w", im.Repo, b.Digest, err)
		}
	}
	u := fmt.Sprintf("%s/v2/%s/manifests/%s", base, im.Repo, im.Tag)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(im.Manifest))
	if err != nil {
		return fmt.Errorf("push %s manifest: %w", im.Repo, err)
	}
	req.Header.Set("Content-Type", mediaManifest)
	if err := expectStatus(client.Do(req)); err != nil {
		return fmt.Errorf("push %s manifest: %w", im.Repo, err)
	}
	return nil
}

// pushBlob does POST /blobs/uploads/ then PUT <location>?digest=... with the
// file as the body.
func pushBlob(ctx context.Context, client *http.Client, base, repo string, b blob) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/v2/%s/blobs/uploads/", base, repo), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err := expectStatus(resp, err); err != nil {
		return fmt.Errorf("start upload: %w", err)
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("upload location: %w", err)
	}
	q := loc.Query()
	q.Set("digest", b.Digest)
	loc.RawQuery = q.Encode()

	f, err := os.Open(b.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), f)
	if err != nil {
		return err
	}
	req.ContentLength = b.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	if err := expectStatus(client.Do(req)); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	return nil
}

// expectStatus closes the response and turns a non-2xx status into an error
// that quotes the start of the body.
func expectStatus(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%s %s: %s: %s", resp.Request.Method, redact(resp.Request.URL), resp.Status, strings.TrimSpace(string(body)))
}

// redact drops the query (upload state tokens) from a URL for messages.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	return c.String()
}
