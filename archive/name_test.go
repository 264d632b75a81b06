package archive

import "testing"

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
