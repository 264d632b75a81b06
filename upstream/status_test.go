package upstream

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestStatusReportsFailover: a registry whose first endpoint fails says
// so — down for the cooldown, its last error — and that the second
// answered.
func TestStatusReportsFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mt := &memTransport{h: pingOK(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Host == "a.lan" {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte(`{"schemaVersion":2}`))
		})}
		r := newTestRegistry(t, []string{"http://a.lan", "http://b.lan"}, func(o *Options) { o.Transport = mt })
		if _, err := r.GetManifest(context.Background(), "org/app", "v1", nil); err != nil {
			t.Fatal(err)
		}
		st := r.Status()
		if len(st.Endpoints) != 2 {
			t.Fatalf("endpoints %+v", st.Endpoints)
		}
		a, b := st.Endpoints[0], st.Endpoints[1]
		if a.Host != "a.lan" {
			t.Errorf("first endpoint %q", a.Host)
		}
		if !a.DownUntil.After(time.Now()) {
			t.Errorf("failed endpoint down until %s, want in the future", a.DownUntil)
		}
		if !strings.Contains(a.LastError, "503") {
			t.Errorf("last error %q does not carry the status", a.LastError)
		}
		if !a.LastOK.IsZero() {
			t.Errorf("failed endpoint last OK %s", a.LastOK)
		}
		if b.LastOK.IsZero() {
			t.Error("the answering endpoint has no last success")
		}
		if b.LastError != "" {
			t.Errorf("the answering endpoint has an error %q", b.LastError)
		}
	})
}
