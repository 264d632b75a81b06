package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

func TestRoutesDispatchOnThePathAsSent(t *testing.T) {
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Handler", name) })
	}
	h := routes(named("api"), route{"/metrics", named("metrics")}, route{"/admin/", nil}, route{"/ui/", named("ui")})
	tests := []struct{ path, handler string }{
		{"/v2/", "api"},
		{"/v2/library/../x/manifests/v1", "api"},
		{"//v2//x", "api"},
		{"/metrics", "metrics"},
		{"/metrics/x", "api"},
		{"/admin/info", "api"}, // no admin handler: the registry API answers
		{"/ui/", "ui"},
		{"/ui/images/x", "ui"},
		{"/uix", "api"},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, &http.Request{Method: http.MethodGet, URL: mustURL(t, tc.path)})
		if got := rec.Header().Get("X-Handler"); got != tc.handler || rec.Code != http.StatusOK {
			t.Errorf("%s: handler %q status %d, want %q", tc.path, got, rec.Code, tc.handler)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, &http.Request{Method: http.MethodGet, URL: mustURL(t, "/ui")})
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/ui/" {
		t.Errorf("/ui: status %d Location %q, want a redirect to /ui/", rec.Code, rec.Header().Get("Location"))
	}
}

func mustURL(t *testing.T, path string) *url.URL {
	t.Helper()
	u, err := url.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
