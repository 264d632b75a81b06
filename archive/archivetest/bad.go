package archivetest

import (
	"archive/tar"
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/archive"
)

// TwoLayerImage is a small legacy image with two distinct layers.
func TwoLayerImage(t testing.TB, tags ...string) LegacyImage {
	return LegacyImage{
		RepoTags: tags,
		Layers:   [][]byte{Layer(t, "etc/os-release"), Layer(t, "bin/app", "etc/app.conf")},
	}
}

// BadArchive is one archive Open must refuse.
type BadArchive struct {
	Name    string
	Archive []byte
	Kind    error
	Names   string // what the message must mention
}

// BadArchives builds the malicious and broken archives.
func BadArchives(t testing.TB) []BadArchive {
	good := LegacySave(TwoLayerImage(t, "app:v1"))
	with := func(extra ...Entry) []byte {
		return Tar(t, append(append([]Entry{}, good...), extra...)...)
	}
	full := Tar(t, good...)
	return []BadArchive{
		{"traversal", with(File("../../evil", []byte("x"))), archive.ErrUnsafe, "../../evil"},
		{"traversal inside", with(File("a/../../evil", []byte("x"))), archive.ErrUnsafe, "a/../../evil"},
		{"absolute path", with(File("/etc/cron.d/evil", []byte("x"))), archive.ErrUnsafe, "/etc/cron.d/evil"},
		{"char device", with(Entry{Name: "dev/null", Type: tar.TypeChar}), archive.ErrUnsafe, "dev/null"},
		{"fifo", with(Entry{Name: "pipe", Type: tar.TypeFifo}), archive.ErrUnsafe, "pipe"},
		{"symlink to /etc/passwd", with(Entry{Name: "passwd", Type: tar.TypeSymlink, Link: "/etc/passwd"}), archive.ErrUnsafe, "passwd"},
		{"symlink leaving", with(Entry{Name: "x/up", Type: tar.TypeSymlink, Link: "../../etc/passwd"}), archive.ErrUnsafe, "x/up"},
		{"hard link leaving", with(Entry{Name: "hl", Type: tar.TypeLink, Link: "../outside"}), archive.ErrUnsafe, "hl"},
		{"link to nothing", with(Entry{Name: "dangling", Type: tar.TypeSymlink, Link: "missing"}), archive.ErrUnsafe, "dangling"},
		{"duplicate entry", with(File("manifest.json", []byte("[]"))), archive.ErrUnsafe, "manifest.json"},
		{"truncated", truncateInLastLayer(t, good), archive.ErrCorrupt, "layer.tar"},
		{"truncated gzip", cut(Compress(t, full, "gzip"), 200), archive.ErrCorrupt, "entry "},
		{"wrong diff_id", wrongDiffID(t), archive.ErrCorrupt, "layer.tar"},
		{"oci blob tampered", tamperedOCI(t), archive.ErrCorrupt, "blobs/sha256/"},
		{"not an archive", []byte("this is not a tar archive at all, just some words"), archive.ErrCorrupt, "archive"},
	}
}

func cut(b []byte, n int) []byte { return b[:len(b)-n] }

// truncateInLastLayer cuts the archive inside the last layer's body.
func truncateInLastLayer(t testing.TB, entries []Entry) []byte {
	// Put a layer last so that the cut falls inside its body.
	var layerIdx int
	for i, e := range entries {
		if strings.HasSuffix(e.Name, "layer.tar") {
			layerIdx = i
		}
	}
	reordered := append(append([]Entry{}, entries[:layerIdx]...), entries[layerIdx+1:]...)
	reordered = append(reordered, entries[layerIdx])
	full := Tar(t, reordered...)
	// The tar ends with two zero blocks and the padding of the last body.
	return full[:len(full)-1024-512-len(entries[layerIdx].Body)/2]
}

func wrongDiffID(t testing.TB) []byte {
	entries := LegacySave(TwoLayerImage(t, "app:v1"))
	for i, e := range entries {
		if strings.HasSuffix(e.Name, "layer.tar") {
			entries[i].Body = Layer(t, "something/else")
			break
		}
	}
	return Tar(t, entries...)
}

func tamperedOCI(t testing.TB) []byte {
	dir, _ := OCILayoutDir(t, "docker.io/library/app:v1", "")
	entries := TarDir(t, dir)
	var idx v1.IndexManifest
	for _, e := range entries {
		if e.Name == "index.json" {
			if err := json.Unmarshal(e.Body, &idx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, e := range entries {
		// Change a blob that is not the manifest: a layer or the config.
		if strings.HasPrefix(e.Name, "blobs/") && !strings.HasSuffix(e.Name, idx.Manifests[0].Digest.Hex) {
			b := append([]byte{}, e.Body...)
			b[len(b)-1] ^= 0xff
			entries[i].Body = b
			break
		}
	}
	return Tar(t, entries...)
}
