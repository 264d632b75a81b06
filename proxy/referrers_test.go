package proxy

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullcache/pullcache/upstream"
)

const (
	sigType  = "application/vnd.example.signature"
	sbomType = "application/spdx+json"
)

// artifact is an OCI artifact of artifactType (its config media type, as
// the in-memory registry reports it) whose subject is subject.
func artifact(t *testing.T, subject v1.Image, artifactType string) v1.Image {
	t.Helper()
	desc, err := partial.Descriptor(subject)
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.MediaType(randomImage(t, 64, 1), types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.MediaType(artifactType))
	return mutate.Subject(img, *desc).(v1.Image)
}

// referrersOf GETs the referrers list and decodes it.
func (e *env) referrersOf(d v1.Hash, query string) (response, v1.IndexManifest) {
	e.t.Helper()
	r := e.get("/v2/library/app/referrers/" + d.String() + query)
	var idx v1.IndexManifest
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &idx); err != nil {
			e.t.Fatalf("referrers body: %v: %s", err, r.body)
		}
	}
	return r, idx
}

func digestsOf(idx v1.IndexManifest) map[v1.Hash]string {
	out := map[v1.Hash]string{}
	for _, d := range idx.Manifests {
		out[d.Digest] = d.ArtifactType
	}
	return out
}

// referrerUpstream holds library/app:v1 with a signature and an SBOM
// attached: behind the referrers API when api is set, else only under the
// referrers tag schema's tag (withTag) or not at all. (go-containerregistry's
// client maintains the fallback tag itself when it pushes an artifact to a
// registry without the API, so "not at all" pushes none.)
func referrerUpstream(t *testing.T, api, withTag bool) (up *fakeUpstream, subject v1.Hash, sig, sbom v1.Hash) {
	t.Helper()
	if api {
		up = newFakeUpstream(t, registry.WithReferrersSupport(true))
	} else {
		up = newFakeUpstream(t)
	}
	img := randomImage(t, 256, 1)
	subject = up.push("library/app:v1", img)
	if !api && !withTag {
		return up, subject, v1.Hash{}, v1.Hash{}
	}
	s, b := artifact(t, img, sigType), artifact(t, img, sbomType)
	sig, sbom = up.push("library/app:sig", s), up.push("library/app:sbom", b)
	if withTag {
		idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: s}, mutate.IndexAddendum{Add: b})
		up.pushIndex("library/app:"+upstream.FallbackTag(subject), mutate.IndexMediaType(idx, types.OCIImageIndex))
	}
	return up, subject, sig, sbom
}

func TestReferrersThroughTheMirror(t *testing.T) {
	tests := []struct {
		name         string
		api, withTag bool
		want         int
	}{
		{"upstream with the referrers API", true, false, 2},
		{"upstream without it, with the fallback tag", false, true, 2},
		{"upstream with neither", false, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up, subject, sig, sbom := referrerUpstream(t, tc.api, tc.withTag)
			e := newEnv(t, up, withPrefetch(false))
			for i, wantSource := range []string{"miss", "hit"} {
				r, idx := e.referrersOf(subject, "")
				if r.status != http.StatusOK {
					t.Fatalf("pull %d: status %d: %s", i, r.status, r.body)
				}
				if ct := r.header.Get("Content-Type"); ct != string(types.OCIImageIndex) {
					t.Errorf("Content-Type %q", ct)
				}
				if got := r.header.Get("X-Pullcache"); got != wantSource {
					t.Errorf("pull %d: X-Pullcache %q, want %q", i, got, wantSource)
				}
				got := digestsOf(idx)
				if len(got) != tc.want || idx.Manifests == nil {
					t.Fatalf("pull %d: referrers %v, want %d", i, got, tc.want)
				}
				if tc.want > 0 && (got[sig] != sigType || got[sbom] != sbomType) {
					t.Errorf("pull %d: referrers %v, want the signature and the SBOM with their artifact types", i, got)
				}
			}
			api, tag := up.calls("GET referrers"), up.calls("GET manifests sha256-")
			if api != 1 {
				t.Errorf("%d referrers API requests for two pulls within the TTL, want 1", api)
			}
			if wantTag := map[bool]int{true: 0, false: 1}[tc.api]; tag != wantTag {
				t.Errorf("%d fallback tag requests, want %d", tag, wantTag)
			}
			// A referrer is an ordinary manifest, pulled through the mirror.
			if tc.want > 0 {
				if r := e.get("/v2/library/app/manifests/"+sig.String(), "Accept", string(types.OCIManifestSchema1)); r.status != http.StatusOK {
					t.Errorf("the signature manifest: status %d", r.status)
				}
			}
		})
	}
}

func TestReferrersArtifactTypeFilter(t *testing.T) {
	up, subject, sig, _ := referrerUpstream(t, true, false)
	e := newEnv(t, up, withPrefetch(false))
	r, idx := e.referrersOf(subject, "?artifactType="+sigType)
	if got := r.header.Get("OCI-Filters-Applied"); got != "artifactType" {
		t.Errorf("OCI-Filters-Applied %q", got)
	}
	if got := digestsOf(idx); len(got) != 1 || got[sig] != sigType {
		t.Errorf("filtered referrers %v, want the signature only", got)
	}
	r, _ = e.referrersOf(subject, "")
	if got := r.header.Get("OCI-Filters-Applied"); got != "" {
		t.Errorf("unfiltered answer says OCI-Filters-Applied %q", got)
	}
	if _, idx := e.referrersOf(subject, "?artifactType=application/none"); len(idx.Manifests) != 0 || idx.Manifests == nil {
		t.Errorf("no referrer of that type: %v", idx.Manifests)
	}
}

func TestReferrersStaleAndOffline(t *testing.T) {
	up, subject, sig, _ := referrerUpstream(t, true, false)
	dir := t.TempDir()
	e := newEnvIn(t, up, dir, withPrefetch(false))
	if _, idx := e.referrersOf(subject, ""); len(idx.Manifests) != 2 {
		t.Fatalf("online: %v", idx.Manifests)
	}
	up.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	e.clock.advance(2 * time.Minute)
	r, idx := e.referrersOf(subject, "")
	if r.status != http.StatusOK || r.header.Get("X-Pullcache") != "stale" || r.header.Get("Warning") == "" {
		t.Errorf("upstream down: status %d, X-Pullcache %q, Warning %q", r.status, r.header.Get("X-Pullcache"), r.header.Get("Warning"))
	}
	if len(idx.Manifests) != 2 {
		t.Errorf("upstream down: %d referrers, want the 2 cached", len(idx.Manifests))
	}
	e.stop()

	before := up.calls("")
	off := newEnvIn(t, up, dir, withOffline())
	off.clock.advance(24 * time.Hour)
	r, idx = off.referrersOf(subject, "?artifactType="+sigType)
	if r.status != http.StatusOK || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sig {
		t.Errorf("offline: status %d, referrers %v", r.status, idx.Manifests)
	}
	last := "0"
	if subject.Hex[63:] == last {
		last = "1" // one subject in 16 ends in 0: then "other" would be the subject
	}
	other := v1.Hash{Algorithm: "sha256", Hex: subject.Hex[:63] + last}
	if r, idx := off.referrersOf(other, ""); r.status != http.StatusOK || len(idx.Manifests) != 0 {
		t.Errorf("offline, nothing known: status %d, %v", r.status, idx.Manifests)
	}
	if n := up.calls("") - before; n != 0 {
		t.Errorf("offline mirror sent %d requests upstream", n)
	}
}
