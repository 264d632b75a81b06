package cache

import (
	"fmt"
	"testing"
)

func TestRepositoriesPerRegistry(t *testing.T) {
	s := openStore(t, t.TempDir())
	links := map[string][]string{
		"docker.io":      {"library/alpine", "library/alpine/extra", "library/a", "org/app"},
		"ghcr.io":        {"org/app"},
		"localhost:5000": {"x"},
	}
	for reg, repos := range links {
		for _, name := range repos {
			for i := range 3 {
				if err := s.Link(Repo{Registry: reg, Name: name}, digestOf([]byte(fmt.Sprint(name, i)))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	tests := map[string]string{
		"docker.io":      "[library/a library/alpine library/alpine/extra org/app]",
		"ghcr.io":        "[org/app]",
		"localhost:5000": "[x]",
		"quay.io":        "[]",
		"docker":         "[]", // a prefix of a registry name is not that registry
	}
	for reg, want := range tests {
		got, err := s.Repositories(reg)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != want {
			t.Errorf("%s: %v, want %s", reg, got, want)
		}
	}
}
