package proxy

import (
	"io"
	"net/http"
	"testing"

	"github.com/pullcache/pullcache/cache"
)

func TestCatalogListsWhatTheMirrorHolds(t *testing.T) {
	up := newFakeUpstream(t)
	img := randomImage(t, 128, 1)
	for _, repo := range []string{"library/c", "library/a", "org/b", "library/notpulled"} {
		up.push(repo+":v1", img)
	}
	ghcr := newFakeUpstream(t)
	ghcr.push("org/tool:v1", img)
	e := newEnv(t, up, withPrefetch(false), withRegistry("ghcr.io", newRegistry(t, "ghcr.io", []string{ghcr.srv.URL})),
		func(o *Options, _ *cache.Options) { o.Hosts = map[string]string{"ghcr.mirror.test": "ghcr.io"} })
	for _, path := range []string{"/v2/library/c/manifests/v1", "/v2/a/manifests/v1", "/v2/org/b/manifests/v1", "/v2/org/tool/manifests/v1?ns=ghcr.io"} {
		if r := e.get(path, "Accept", acceptAll); r.status != http.StatusOK {
			t.Fatalf("%s: %d", path, r.status)
		}
	}
	tests := []struct {
		path, host, body, link string
	}{
		{"/v2/_catalog", "", `{"repositories":["library/a","library/c","org/b"]}`, ""},
		{"/v2/_catalog?n=2", "", `{"repositories":["library/a","library/c"]}`, `</v2/_catalog?last=library%2Fc&n=2>; rel="next"`},
		{"/v2/_catalog?n=2&last=library/c", "", `{"repositories":["org/b"]}`, ""},
		{"/v2/_catalog?n=0", "", `{"repositories":[]}`, ""},
		{"/v2/_catalog?ns=ghcr.io", "", `{"repositories":["org/tool"]}`, ""},
		{"/v2/ghcr.io/_catalog?n=1", "", `{"repositories":["org/tool"]}`, ""},
		{"/v2/_catalog", "ghcr.mirror.test", `{"repositories":["org/tool"]}`, ""},
		{"/v2/_catalog?ns=docker.io&n=1", "", `{"repositories":["library/a"]}`, `</v2/_catalog?last=library%2Fa&n=1&ns=docker.io>; rel="next"`},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(http.MethodGet, e.mirror.URL+tc.path, nil)
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r := readResponse(t, resp)
		if r.status != http.StatusOK || string(r.body) != tc.body {
			t.Errorf("%s (Host %q): status %d body %s, want %s", tc.path, tc.host, r.status, r.body, tc.body)
		}
		if got := r.header.Get("Link"); got != tc.link {
			t.Errorf("%s: Link %q, want %q", tc.path, got, tc.link)
		}
	}
	if r := e.get("/v2/_catalog?ns=quay.io"); r.status != http.StatusNotFound || errorCode(t, r) != CodeNameUnknown {
		t.Errorf("catalog of an unconfigured registry: status %d", r.status)
	}
}

func readResponse(t *testing.T, resp *http.Response) response {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}
