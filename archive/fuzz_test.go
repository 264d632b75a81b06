package archive_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"testing"

	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/archive/archivetest"
)

// Bounds on one fuzz input, so that an execution costs milliseconds: the
// seeds are 10–16 kB, and a mutated gzip may expand a thousandfold.
const (
	fuzzMaxInput    = 64 << 10
	fuzzMaxUnpacked = 1 << 20
)

// FuzzRead feeds arbitrary bytes to Read: it must return an archive or an
// error, never both and never a panic; every manifest and blob it accepts
// hashes to its digest (re-hashed here, not with the package's own
// verification); and it leaves no temporary files either way.
func FuzzRead(f *testing.F) {
	f.Add(archivetest.Tar(f, archivetest.LegacySave(archivetest.TwoLayerImage(f, "app:v1"))...))
	f.Add(archivetest.Compress(f, archivetest.Tar(f, archivetest.LegacySave(archivetest.TwoLayerImage(f, "a:1"))...), "gzip"))
	oci, _ := archivetest.OCILayoutDir(f, "app:v1", "")
	f.Add(archivetest.Tar(f, archivetest.TarDir(f, oci)...))
	for _, c := range archivetest.BadArchives(f) {
		f.Add(c.Archive)
	}
	// One directory per fuzzing process, checked empty after each input:
	// a t.TempDir per input costs more than most inputs do.
	tmp := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzMaxInput {
			return
		}
		a, err := archive.Read(bytes.NewReader(b), archive.Options{TempDir: tmp, MaxUnpacked: fuzzMaxUnpacked})
		if err == nil {
			checkAccepted(t, a)
			a.Close()
		} else if a != nil {
			t.Error("an archive returned with an error")
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	})
}

// checkAccepted re-hashes what Read accepted.
func checkAccepted(t *testing.T, a *archive.Archive) {
	t.Helper()
	if len(a.Images) == 0 {
		t.Error("an archive without images was accepted")
	}
	for _, im := range a.Images {
		for _, m := range im.Manifests {
			if got := sha256Hex(m.Bytes); got != m.Digest.Hex || m.Digest.Algorithm != "sha256" {
				t.Errorf("manifest %s hashes to sha256:%s", m.Digest, got)
			}
		}
		for _, bl := range im.Blobs {
			checkBlob(t, bl)
		}
	}
}

func checkBlob(t *testing.T, bl archive.Blob) {
	t.Helper()
	rc, err := bl.Open()
	if err != nil {
		t.Errorf("blob %s: %v", bl.Digest, err)
		return
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Errorf("blob %s: %v", bl.Digest, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != bl.Digest.Hex || bl.Digest.Algorithm != "sha256" {
		t.Errorf("blob %s hashes to sha256:%s", bl.Digest, got)
	}
	if n != bl.Size {
		t.Errorf("blob %s: %d bytes, Size says %d", bl.Digest, n, bl.Size)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
