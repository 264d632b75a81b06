package admin

import (
	"bytes"
	"encoding/json"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/cache"
)

// saveEntry is one entry of the manifest.json that makes a bundle readable
// by `docker load` as well, as Docker 25+ saves are: an OCI layout that
// also carries docker save's index of images. Paths are the layout's own
// blobs, so no byte is written twice.
type saveEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// loadPlatform is the platform of an index whose image docker load gets:
// an engine loads one image per name.
var loadPlatform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}

// addSaveEntry lists the image m names as n for docker load, when docker
// load can read it: an image (for an index, its child for loadPlatform, if
// that is cached) with an image config and layers of the tar and
// tar+gzip types, every one in the bundle.
func (b *bundle) addSaveEntry(store *cache.Store, n archive.Name, m *cache.Manifest) {
	if m.IsIndex() {
		child, err := platformChild(store, n, m, &loadPlatform)
		if err != nil {
			return
		}
		m = child
	}
	im, err := v1.ParseManifest(bytes.NewReader(m.Bytes))
	if err != nil || !loadableConfig(im.Config.MediaType) {
		return
	}
	e := saveEntry{Config: archive.BlobPath(im.Config.Digest), RepoTags: []string{n.String()}}
	for _, l := range im.Layers {
		if _, ok := b.blobs[l.Digest]; !ok || !loadableLayer(l.MediaType) {
			return
		}
		e.Layers = append(e.Layers, archive.BlobPath(l.Digest))
	}
	b.saves = append(b.saves, e)
}

func loadableConfig(mt types.MediaType) bool {
	return mt == types.DockerConfigJSON || mt == types.OCIConfigJSON
}

func loadableLayer(mt types.MediaType) bool {
	switch mt {
	case types.DockerLayer, types.DockerUncompressedLayer, types.OCILayer, types.OCIUncompressedLayer:
		return true
	}
	return false
}

// saveManifest is manifest.json, or nil when no image can be loaded.
func (b *bundle) saveManifest() ([]byte, error) {
	if len(b.saves) == 0 {
		return nil, nil
	}
	return json.Marshal(b.saves)
}
