package archive_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/archive/archivetest"
)

// FuzzRead feeds arbitrary bytes to Read: it must return an archive or an
// error, never panic, and leave no temporary files either way.
func FuzzRead(f *testing.F) {
	f.Add(archivetest.Tar(f, archivetest.LegacySave(archivetest.TwoLayerImage(f, "app:v1"))...))
	f.Add(archivetest.Compress(f, archivetest.Tar(f, archivetest.LegacySave(archivetest.TwoLayerImage(f, "a:1"))...), "gzip"))
	for _, c := range archivetest.BadArchives(f) {
		f.Add(c.Archive)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tmp := t.TempDir()
		a, err := archive.Read(bytes.NewReader(b), archive.Options{TempDir: tmp})
		if err == nil {
			if len(a.Images) == 0 {
				t.Error("an archive without images was accepted")
			}
			a.Close()
		} else if errors.Is(err, archive.ErrNoName) && a != nil {
			t.Error("an archive returned with an error")
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("temporary files left: %v", left)
		}
	})
}
