package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// legacyReader builds registry images from a legacy `docker save`:
// manifest.json lists, per image, the config file, RepoTags and layer files
// (no digests); the config's rootfs.diff_ids give each layer's uncompressed
// digest.
type legacyReader struct {
	t   *tree
	tmp string
	// layers are the layers already prepared, by diff_id: images of one
	// save share layers, and old Docker links them to one another.
	layers map[v1.Hash]Blob
	n      int
}

// readSaveManifest reads a docker save's manifest.json (not a registry
// manifest: config file, RepoTags and layer paths of each image).
func readSaveManifest(t *tree) (tarball.Manifest, error) {
	b, err := t.readFile("manifest.json")
	if err != nil {
		return nil, err
	}
	var m tarball.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest.json: %v", ErrCorrupt, err)
	}
	return m, nil
}

func readLegacy(t *tree, tmp string) ([]Image, error) {
	m, err := readSaveManifest(t)
	if err != nil {
		return nil, err
	}
	r := &legacyReader{t: t, tmp: tmp, layers: map[v1.Hash]Blob{}}
	images := make([]Image, 0, len(m))
	for _, d := range m {
		img, err := r.image(d)
		if err != nil {
			return nil, err
		}
		images = append(images, img)
	}
	return images, nil
}

func (r *legacyReader) image(d tarball.Descriptor) (Image, error) {
	cfgBytes, err := r.t.readFile(d.Config)
	if err != nil {
		return Image{}, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgBytes))
	if err != nil {
		return Image{}, fmt.Errorf("%w: %s: config: %v", ErrCorrupt, d.Config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(d.Layers) {
		return Image{}, fmt.Errorf("%w: %s: config lists %d layers (diff_ids), manifest.json %d",
			ErrCorrupt, d.Config, len(cfg.RootFS.DiffIDs), len(d.Layers))
	}
	cfgBlob, err := r.configBlob(d.Config, cfgBytes)
	if err != nil {
		return Image{}, err
	}
	img := Image{Blobs: []Blob{cfgBlob}, refs: d.RepoTags}
	mf := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.DockerManifestSchema2,
		Config:        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: cfgBlob.Size, Digest: cfgBlob.Digest},
	}
	for i, name := range d.Layers {
		l, err := r.layer(name, cfg.RootFS.DiffIDs[i])
		if err != nil {
			return Image{}, err
		}
		img.Blobs = append(img.Blobs, l)
		mf.Layers = append(mf.Layers, v1.Descriptor{MediaType: types.DockerLayer, Size: l.Size, Digest: l.Digest})
	}
	b, err := json.MarshalIndent(mf, "", "   ")
	if err != nil {
		return Image{}, err
	}
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	img.Manifests = []Manifest{{Digest: h, MediaType: string(types.DockerManifestSchema2), Bytes: b}}
	return img, nil
}

// configBlob keeps the config's exact bytes: their digest is the image ID.
func (r *legacyReader) configBlob(name string, b []byte) (Blob, error) {
	h, size, _ := v1.SHA256(bytes.NewReader(b))
	f, err := r.t.open(name)
	if err != nil {
		return Blob{}, err
	}
	defer f.Close()
	return Blob{Digest: h, Size: size, path: f.Name()}, nil
}

// layer verifies a layer file against its diff_id and returns it as a gzip
// blob: a gzip layer as it is, an uncompressed one compressed into the
// temporary directory.
func (r *legacyReader) layer(name string, diffID v1.Hash) (Blob, error) {
	if b, ok := r.layers[diffID]; ok {
		return b, nil
	}
	f, err := r.t.open(name)
	if err != nil {
		return Blob{}, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(r.t.meter.reader(f), 64<<10)
	head, _ := br.Peek(6)
	var b Blob
	switch c := Sniff(head); c {
	case None:
		b, err = r.compress(name, br, diffID)
	case Gzip:
		b, err = verifyGzipLayer(name, br, f.Name(), diffID)
	default:
		err = fmt.Errorf("%w: layer %s is %s-compressed; a legacy save holds tar or gzip layers", ErrCorrupt, name, c)
	}
	if err != nil {
		return Blob{}, err
	}
	r.layers[diffID] = b
	return b, nil
}

// compress gzips an uncompressed layer into the temporary directory,
// hashing the tar on the way in (the diff_id) and the gzip on the way out
// (the blob digest).
func (r *legacyReader) compress(name string, src io.Reader, diffID v1.Hash) (Blob, error) {
	r.n++
	dst, err := os.Create(filepath.Join(r.tmp, fmt.Sprintf("layer-%d.tar.gz", r.n)))
	if err != nil {
		return Blob{}, err
	}
	defer dst.Close()
	outHash := sha256.New()
	counter := &countWriter{}
	zw := gzip.NewWriter(io.MultiWriter(dst, outHash, counter))
	inHash := sha256.New()
	if _, err := io.Copy(zw, io.TeeReader(src, inHash)); err != nil {
		return Blob{}, fmt.Errorf("layer %s: %w", name, err)
	}
	if err := zw.Close(); err != nil {
		return Blob{}, fmt.Errorf("layer %s: %w", name, err)
	}
	if err := checkDiffID(name, inHash, diffID); err != nil {
		return Blob{}, err
	}
	if err := dst.Close(); err != nil {
		return Blob{}, err
	}
	h := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", outHash.Sum(nil))}
	return Blob{Digest: h, Size: counter.n, path: dst.Name()}, nil
}

// verifyGzipLayer checks that a gzip layer decompresses to its diff_id and
// returns it as it is.
func verifyGzipLayer(name string, r io.Reader, path string, diffID v1.Hash) (Blob, error) {
	outHash := sha256.New()
	counter := &countWriter{}
	zr, err := gzip.NewReader(io.TeeReader(r, io.MultiWriter(outHash, counter)))
	if err != nil {
		return Blob{}, fmt.Errorf("%w: layer %s: %v", ErrCorrupt, name, err)
	}
	inHash := sha256.New()
	if _, err := io.Copy(inHash, zr); err != nil {
		return Blob{}, fmt.Errorf("%w: layer %s: %v", ErrCorrupt, name, err)
	}
	// Count trailing bytes after the gzip stream too: they are part of the blob.
	if _, err := io.Copy(io.Discard, io.TeeReader(r, io.MultiWriter(outHash, counter))); err != nil {
		return Blob{}, err
	}
	if err := checkDiffID(name, inHash, diffID); err != nil {
		return Blob{}, err
	}
	h := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", outHash.Sum(nil))}
	return Blob{Digest: h, Size: counter.n, path: path}, nil
}

func checkDiffID(name string, h hash.Hash, diffID v1.Hash) error {
	if got := fmt.Sprintf("%x", h.Sum(nil)); diffID.Algorithm != "sha256" || got != diffID.Hex {
		return fmt.Errorf("%w: layer %s: content is sha256:%s, the config's diff_id is %s", ErrCorrupt, name, got, diffID)
	}
	return nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
