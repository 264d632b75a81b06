package archive

import (
	"errors"
	"testing"
)

func TestParseName(t *testing.T) {
	cases := []struct{ in, registry, want string }{
		{"alpine", "", "docker.io/library/alpine:latest"},
		{"alpine:3.19", "docker.io", "docker.io/library/alpine:3.19"},
		{"docker.io/library/alpine:3.19", "", "docker.io/library/alpine:3.19"},
		{"index.docker.io/org/app:v1", "", "docker.io/org/app:v1"},
		{"org/app:v1", "", "docker.io/org/app:v1"},
		{"ghcr.io/org/app:v1", "", "ghcr.io/org/app:v1"},
		{"app:v1", "ghcr.io", "ghcr.io/app:v1"},
		{"localhost:5000/app:v1", "", "localhost:5000/app:v1"},
	}
	for _, c := range cases {
		n, err := ParseName(c.in, c.registry)
		if err != nil {
			t.Errorf("ParseName(%q): %v", c.in, err)
			continue
		}
		if n.String() != c.want {
			t.Errorf("ParseName(%q, %q) = %s, want %s", c.in, c.registry, n, c.want)
		}
	}
}

func TestParseNameRejectsGarbage(t *testing.T) {
	if _, err := ParseName("UPPER/Case:!!", ""); err == nil {
		t.Error("ParseName accepted an invalid reference")
	}
}

// TestCleanName: entry names that leave the archive stay refused, and the
// names a save or layout writes keep their cleaned form.
func TestCleanName(t *testing.T) {
	for _, name := range []string{
		"/etc/passwd", "/", "//x", "..", "../x", "a/../../x", "a/../b", "./..",
		`..\x`, `a\..\b`, `a/..\b`, "blobs/sha256/../../../x",
	} {
		if got, err := cleanName(name); !errors.Is(err, ErrUnsafe) {
			t.Errorf("cleanName(%q) = %q, %v; want ErrUnsafe", name, got, err)
		}
	}
	for name, want := range map[string]string{
		"manifest.json": "manifest.json", "./index.json": "index.json", "a//b/": "a/b",
		".": ".", "./": ".", "": ".", "blobs/sha256/ab": "blobs/sha256/ab", "a..b/c..": "a..b/c..",
	} {
		if got, err := cleanName(name); err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
}
