package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func sha256Of(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func sha512Of(b []byte) string {
	sum := sha512.Sum512(b)
	return "sha512:" + hex.EncodeToString(sum[:])
}

func TestGetManifestChecksBytes(t *testing.T) {
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	other := []byte(`{"schemaVersion":2}`)
	big := bytes.Repeat([]byte{' '}, maxManifestSize+1)
	exact := bytes.Repeat([]byte{' '}, maxManifestSize)
	tests := []struct {
		name string
		ref  string
		// served is what the registry sends; digestHeader its
		// Docker-Content-Digest ("" for none).
		served       []byte
		digestHeader string
		// chunked sends no Content-Length, so only reading finds the size.
		chunked bool
		wantErr bool // an Invalid error
		// digest is the Digest wanted; "" for the served bytes' sha256.
		digest string
	}{
		{name: "tag, header agrees", ref: "v1", served: body, digestHeader: sha256Of(body)},
		{name: "tag, no header", ref: "v1", served: body},
		{name: "tag, header disagrees", ref: "v1", served: body, digestHeader: sha256Of(other), wantErr: true},
		{name: "digest agrees", ref: sha256Of(body), served: body, digestHeader: sha256Of(body)},
		{name: "digest disagrees with the bytes", ref: sha256Of(other), served: body, digestHeader: sha256Of(other), wantErr: true},
		// The requested digest is what the bytes must hash to; a header
		// that lies about it does not matter.
		{name: "digest agrees, header lies", ref: sha256Of(body), served: body, digestHeader: sha256Of(other)},
		// Asked by a sha512 digest, the bytes are hashed with sha512 and
		// known by that digest; registries send a sha256 header.
		{name: "sha512 digest agrees", ref: sha512Of(body), served: body, digestHeader: sha256Of(body), digest: sha512Of(body)},
		{name: "sha512 digest disagrees with the bytes", ref: sha512Of(other), served: body, digestHeader: sha256Of(body), wantErr: true},
		{name: "exactly 4 MiB", ref: "v1", served: exact},
		{name: "over 4 MiB with Content-Length", ref: "v1", served: big, wantErr: true},
		{name: "over 4 MiB chunked", ref: "v1", served: big, chunked: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := serveRegistry(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json; charset=utf-8")
				if tc.digestHeader != "" {
					w.Header().Set("Docker-Content-Digest", tc.digestHeader)
				}
				if tc.chunked {
					w.(http.Flusher).Flush() // headers out now: no Content-Length
				} else {
					w.Header().Set("Content-Length", strconv.Itoa(len(tc.served)))
				}
				w.Write(tc.served)
			})
			r := newTestRegistry(t, []string{srv.URL})
			m, err := r.GetManifest(context.Background(), "org/app", tc.ref, []string{"application/vnd.oci.image.manifest.v1+json"})
			if tc.wantErr {
				if got := KindOf(err); got != Invalid {
					t.Errorf("GetManifest: %v (kind %s), want an invalid error", err, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetManifest: %v", err)
			}
			if !bytes.Equal(m.Bytes, tc.served) {
				t.Errorf("GetManifest returned %d bytes, want the %d served", len(m.Bytes), len(tc.served))
			}
			want := tc.digest
			if want == "" {
				want = sha256Of(tc.served)
			}
			if got := m.Digest.String(); got != want {
				t.Errorf("Digest = %s, want %s", got, want)
			}
			if m.MediaType != "application/vnd.oci.image.manifest.v1+json" {
				t.Errorf("MediaType = %q, want the Content-Type without parameters", m.MediaType)
			}
		})
	}
}

// pagingRegistry serves a tag list pageSize tags at a time, each page
// linking to the next with link(last tag of the page).
type pagingRegistry struct {
	tags     []string
	pageSize int
	link     func(last string) string

	mu    sync.Mutex
	pages []string // request URIs of the tag list pages asked for
}

func (p *pagingRegistry) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.pages = append(p.pages, r.URL.RequestURI())
	p.mu.Unlock()
	if r.URL.Path != "/v2/org/app/tags/list" {
		http.NotFound(w, r)
		return
	}
	start := 0
	if last := r.URL.Query().Get("last"); last != "" {
		for i, tag := range p.tags {
			if tag == last {
				start = i + 1
			}
		}
	}
	end := min(start+p.pageSize, len(p.tags))
	page := p.tags[start:end]
	if end < len(p.tags) && p.link != nil {
		w.Header().Set("Link", p.link(page[len(page)-1]))
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"name": "org/app", "tags": page})
}

func (p *pagingRegistry) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.pages...)
}

func TestTagsFollowsLinkPagination(t *testing.T) {
	tags := make([]string, 10)
	for i := range tags {
		tags[i] = fmt.Sprintf("t%02d", i)
	}
	tests := []struct {
		name      string
		pageSize  int
		link      func(last string) string
		wantPages int
		wantTags  []string
	}{
		{"one page", 20, nil, 1, tags},
		{"relative links", 3, func(last string) string {
			return fmt.Sprintf(`</v2/org/app/tags/list?n=3&last=%s>; rel="next"`, last)
		}, 4, tags},
		// The next page is asked of the same endpoint, whatever host the
		// link names (the registry may not know the name it is reached by).
		{"absolute links to another host", 4, func(last string) string {
			return fmt.Sprintf(`<https://elsewhere.invalid/v2/org/app/tags/list?n=4&last=%s>; rel="next"`, last)
		}, 3, tags},
		{"no rel=next", 3, func(last string) string {
			return fmt.Sprintf(`</v2/org/app/tags/list?last=%s>; rel="prev"`, last)
		}, 1, tags[:3]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &pagingRegistry{tags: tags, pageSize: tc.pageSize, link: tc.link}
			srv := serveRegistry(t, p.serve)
			r := newTestRegistry(t, []string{srv.URL})
			got, err := r.Tags(context.Background(), "org/app")
			if err != nil {
				t.Fatalf("Tags: %v", err)
			}
			if strings.Join(got, ",") != strings.Join(tc.wantTags, ",") {
				t.Errorf("Tags = %v, want %v", got, tc.wantTags)
			}
			if reqs := p.requests(); len(reqs) != tc.wantPages {
				t.Errorf("pages asked for: %d, want %d: %v", len(reqs), tc.wantPages, reqs)
			}
		})
	}
}

// TestTagsStopsAtPageBound: a registry whose every page links to itself
// is asked maxTagPages times, not forever.
func TestTagsStopsAtPageBound(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := serveRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		w.Header().Set("Link", `</v2/org/app/tags/list?last=a>; rel="next"`)
		w.Write([]byte(`{"tags":["a"]}`))
	})
	r := newTestRegistry(t, []string{srv.URL})
	got, err := r.Tags(context.Background(), "org/app")
	if err != nil {
		t.Fatalf("Tags: %v", err)
	}
	if len(got) != maxTagPages {
		t.Errorf("Tags returned %d tags, want one per page, %d", len(got), maxTagPages)
	}
	mu.Lock()
	defer mu.Unlock()
	if n != maxTagPages {
		t.Errorf("pages asked for: %d, want %d", n, maxTagPages)
	}
}

func TestTagsRejectsBadJSON(t *testing.T) {
	srv := serveRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`<html>not a tag list</html>`))
	})
	r := newTestRegistry(t, []string{srv.URL})
	_, err := r.Tags(context.Background(), "org/app")
	if got := KindOf(err); got != Invalid {
		t.Errorf("Tags: %v (kind %s), want invalid", err, got)
	}
}

func TestNextLink(t *testing.T) {
	tests := []struct {
		name, link, want string
	}{
		{name: "none", link: "", want: ""},
		{name: "relative", link: `</v2/r/tags/list?n=2&last=b>; rel="next"`, want: "/v2/r/tags/list?n=2&last=b"},
		{name: "absolute, other host", link: `<https://other.example/v2/r/tags/list?last=b>; rel="next"`, want: "/v2/r/tags/list?last=b"},
		{name: "spaces around", link: ` </v2/r/tags/list?last=b> ;  rel="next" `, want: "/v2/r/tags/list?last=b"},
		{name: "no query", link: `</v2/r/tags/list>; rel="next"`, want: "/v2/r/tags/list"},
		{name: "rel=prev", link: `</v2/r/tags/list?last=b>; rel="prev"`, want: ""},
		{name: "no rel", link: `</v2/r/tags/list?last=b>`, want: ""},
		{name: "not under /v2/", link: `</elsewhere?last=b>; rel="next"`, want: ""},
		{name: "unparsable URL", link: "<http://[::1/v2/r>; rel=\"next\"", want: ""},
		{name: "prev and next (RFC 8288 list)", link: `</v2/r/tags/list?last=a>; rel="prev", </v2/r/tags/list?last=c>; rel="next"`,
			want: "/v2/r/tags/list?last=c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{Header: http.Header{}}
			if tc.link != "" {
				resp.Header.Set("Link", tc.link)
			}
			if got := nextLink(resp); got != tc.want {
				t.Errorf("nextLink(%q) = %q, want %q", tc.link, got, tc.want)
			}
		})
	}
}
