package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// GenerateSynthetic writes a synthetic cache of n images into the empty
// data directory dir, for measuring the index at scale (bench -index): each
// image is a tagged manifest with a config and layersPer layers (the first
// layer shared by groups of 50 images), each blob recorded as a file of
// 1 MiB. The files themselves are empty placeholders, so a million blobs
// fit on a small disk; nothing here is servable content.
// It returns how many blobs (manifests included) it recorded.
func GenerateSynthetic(dir string, n, layersPer int) (int, error) {
	for _, d := range []string{"blobs", "tmp", "index"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			return 0, err
		}
	}
	db, err := badger.Open(badgerOptions(filepath.Join(dir, "index"), nil, 8<<20, 4<<20).WithLogger(nil))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	made := map[v1.Hash]bool{}
	for i := range n {
		if err := synthImage(dir, wb, made, i, layersPer); err != nil {
			return 0, err
		}
	}
	if err := wb.Flush(); err != nil {
		return 0, err
	}
	// Compacted, as a store that grew over months is: start-up then
	// measures the store, not the compaction of one huge batch.
	return len(made), db.Flatten(2)
}

func synthHash(s string) v1.Hash {
	sum := sha256.Sum256([]byte(s))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func synthImage(dir string, wb *badger.WriteBatch, made map[v1.Hash]bool, i, layersPer int) error {
	repo := Repo{Registry: "docker.io", Name: "synthetic/app" + strconv.Itoa(i/10)}
	refs := []Descriptor{{Digest: synthHash("config" + strconv.Itoa(i)), Size: 1 << 20, MediaType: "application/vnd.oci.image.config.v1+json"}}
	for l := range layersPer {
		key := fmt.Sprintf("layer %d %d", i, l)
		if l == 0 {
			key = fmt.Sprintf("base %d", i/50)
		}
		refs = append(refs, Descriptor{Digest: synthHash(key), Size: 1 << 20, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip"})
	}
	m := &Manifest{Digest: synthHash("manifest" + strconv.Itoa(i)), MediaType: "application/vnd.oci.image.manifest.v1+json", Refs: refs}
	rec, err := json.Marshal(manifestRecord{MediaType: m.MediaType, Size: 1024, Refs: refs})
	if err != nil {
		return err
	}
	tag, _ := json.Marshal(Tag{Digest: m.Digest})
	at := binary.BigEndian.AppendUint64(nil, uint64(1_700_000_000+i))
	sets := [][2][]byte{
		{manifestKey(m.Digest), rec},
		{tagKey(repo, "v"+strconv.Itoa(i%10)), tag},
		{accessKey(m.Digest), at},
	}
	for _, h := range append(refDigests(m), m.Digest) {
		sets = append(sets, [2][]byte{linkKey(repo, h), nil})
		if made[h] {
			continue
		}
		made[h] = true
		size, _ := json.Marshal(blobRecord{Size: 1 << 20})
		sets = append(sets, [2][]byte{blobKey(h), size}, [2][]byte{fileKey(h), fileRecord{alloc: 1 << 20, committed: 1_700_000_000}.bytes()})
		if err := synthFile(dir, h); err != nil {
			return err
		}
	}
	for _, kv := range sets {
		if err := wb.Set(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

func synthFile(dir string, h v1.Hash) error {
	p := filepath.Join(dir, "blobs", h.Algorithm, h.Hex[:2], h.Hex)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return err
	}
	return os.WriteFile(p, nil, 0o640)
}
