package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func referrerIndex(t *testing.T, digests ...string) []byte {
	t.Helper()
	var ms []map[string]any
	for _, d := range digests {
		ms = append(ms, map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 10,
			"artifactType": "application/vnd.example.sig"})
	}
	b, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": ms})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReferrers(t *testing.T) {
	subject, _ := v1.NewHash(sha256Of([]byte("subject")))
	a, b := sha256Of([]byte("a")), sha256Of([]byte("b"))
	tag := "sha256-" + subject.Hex
	tests := []struct {
		name    string
		handler func(t *testing.T) http.HandlerFunc
		source  string
		want    []string
		kind    Kind // when an error is expected
		wantErr bool
	}{
		{"API, two pages", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if !strings.Contains(r.URL.Path, "/referrers/"+subject.String()) {
					w.WriteHeader(http.StatusNotFound)
					return
				}
				w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
				if r.URL.Query().Get("page") == "" {
					w.Header().Set("Link", `</v2/app/referrers/`+subject.String()+`?page=2>; rel="next"`)
					w.Write(referrerIndex(t, a))
					return
				}
				w.Write(referrerIndex(t, b))
			}
		}, "api", []string{a, b}, 0, false},
		{"no API, fallback tag", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasSuffix(r.URL.Path, "/manifests/"+tag) {
					w.WriteHeader(http.StatusNotFound)
					return
				}
				w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
				w.Write(referrerIndex(t, b))
			}
		}, "tag", []string{b}, 0, false},
		{"neither", func(t *testing.T) http.HandlerFunc { return status(http.StatusNotFound) }, "none", nil, 0, false},
		{"upstream down", func(t *testing.T) http.HandlerFunc { return status(http.StatusServiceUnavailable) }, "", nil, Unavailable, true},
		{"API answers garbage", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>") }
		}, "", nil, Invalid, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := serveRegistry(t, tc.handler(t))
			reg := newTestRegistry(t, []string{srv.URL})
			got, err := reg.Referrers(context.Background(), "app", subject)
			if tc.wantErr {
				if KindOf(err) != tc.kind {
					t.Fatalf("err %v (kind %s), want kind %s", err, KindOf(err), tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Source != tc.source {
				t.Errorf("source %q, want %q", got.Source, tc.source)
			}
			var digests []string
			for _, d := range got.Manifests {
				digests = append(digests, d.Digest.String())
			}
			if fmt.Sprint(digests) != fmt.Sprint(tc.want) || got.Manifests == nil {
				t.Errorf("referrers %v, want %v", digests, tc.want)
			}
		})
	}
}

func TestFallbackTag(t *testing.T) {
	h, _ := v1.NewHash(sha256Of(nil))
	if got, want := FallbackTag(h), "sha256-"+h.Hex; got != want {
		t.Errorf("FallbackTag = %q, want %q", got, want)
	}
	long := v1.Hash{Algorithm: strings.Repeat("a", 40), Hex: strings.Repeat("f", 128)}
	if got := FallbackTag(long); got != strings.Repeat("a", 32)+"-"+strings.Repeat("f", 64) {
		t.Errorf("FallbackTag of a long digest = %q", got)
	}
}
