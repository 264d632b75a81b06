package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// pullAndRun pulls image (a name as a user types it) with the daemon,
// checks the digest it reports and the image ID it stores, runs the image
// and checks what it prints. It returns the pull's output.
func (d *dockerDaemon) pullAndRun(ctx context.Context, t *testing.T, image string, r *runnable) string {
	t.Helper()
	out := d.docker(ctx, t, "pull", image)
	if want := "Digest: " + r.manifestDigest(t); !strings.Contains(out, want) {
		t.Errorf("docker pull %s: output lacks %q:\n%s", image, want, out)
	}
	d.checkRuns(ctx, t, image, r)
	return out
}

// checkRuns checks a local image's ID and what it prints when run.
func (d *dockerDaemon) checkRuns(ctx context.Context, t *testing.T, image string, r *runnable) {
	t.Helper()
	if got, want := d.imageID(ctx, t, image), r.imageID(t); got != want {
		t.Errorf("%s: image ID %s, want %s (the config digest)", image, got, want)
	}
	got := strings.TrimSpace(d.docker(ctx, t, "run", "--rm", "--network", "none", image))
	if got != r.output {
		t.Errorf("docker run %s printed %q, want %q", image, got, r.output)
	}
}

// requireFetchedOnce fails t unless the upstream served each of blobs
// exactly once.
func requireFetchedOnce(t *testing.T, u *upstream, blobs []string) {
	t.Helper()
	got := u.blobGETsByDigest()
	for _, b := range blobs {
		if got[b] != 1 {
			t.Errorf("upstream served blob %s %d times, want once; all blob GETs:\n%s", b, got[b], formatCounts(got))
		}
	}
}

// TestDockerPullsThroughMirror configures a Docker daemon as the README
// tells users (registry-mirrors in its daemon.json) and pulls and runs
// images through pullcache: cold, with each blob fetched upstream once and
// seen in pullcache's log; a second tag sharing a layer, which fetches only
// the new blobs; a multi-platform index, of which the daemon takes its own
// platform; ghcr.io through the path-prefix form; then everything again,
// by tag and by digest, after both upstreams are gone.
func TestDockerPullsThroughMirror(t *testing.T) {
	ctx := context.Background()
	requireDocker(t)
	imgs := loadDockerImages(t)
	hub, ghcr := newUpstream(t), newUpstream(t)
	pushRunnable(t, hub, imgs.v1, imgs.v2, imgs.multi)
	pushRunnable(t, ghcr, imgs.app)
	// A tag TTL of 1ms revalidates every by-tag request upstream: once the
	// upstreams are gone, the pulls take the stale path.
	srv := startPullcache(t, t.TempDir(), map[string]string{"docker.io": hub.url(), "ghcr.io": ghcr.url()}, "--tag-ttl", "1ms")
	d := startDockerd(ctx, t, dockerdOptions{Mirrors: []string{"http://" + srv.addr}})
	appImage := srv.addr + "/ghcr.io/" + imgs.app.ref

	t.Run("cold", func(t *testing.T) {
		d.pullAndRun(ctx, t, "dockerhello:v1", imgs.v1)
		blobs := blobsOf(t, imgs.v1.image)
		requireFetchedOnce(t, hub, blobs)
		reqs := pullcacheRequests(srv.logs.String())
		for _, b := range blobs {
			if n := countRequests(reqs, "GET", "/v2/library/dockerhello/blobs/"+b); n != 1 {
				t.Errorf("pullcache log: %d GETs of blob %s, want 1:\n%s", n, b, formatRequests(reqs))
			}
		}
		for _, r := range reqs {
			if r.route == "manifest" && (r.status != "200" || r.registry != "docker.io") {
				t.Errorf("pullcache log: manifest request %s %s answered %s for registry %q, want 200 for docker.io", r.method, r.path, r.status, r.registry)
			}
		}
		if d.hubAttempts() != nil {
			t.Errorf("the daemon went past the mirror: %v", d.hubAttempts())
		}
	})

	t.Run("second tag sharing a layer", func(t *testing.T) {
		mark := len(pullcacheRequests(srv.logs.String()))
		out := d.pullAndRun(ctx, t, "dockerhello:v2", imgs.v2)
		if !strings.Contains(out, "Already exists") {
			t.Errorf("docker pull of v2 does not report the shared layer as already there:\n%s", out)
		}
		v1Blobs, v2Blobs := blobsOf(t, imgs.v1.image), blobsOf(t, imgs.v2.image)
		shared, added := v1Blobs[1], []string{v2Blobs[0], v2Blobs[2]} // [config, layers...]
		requireFetchedOnce(t, hub, append(added, shared))
		reqs := pullcacheRequests(srv.logs.String())[mark:]
		if n := countRequests(reqs, "GET", "/blobs/"+shared); n != 0 {
			t.Errorf("the daemon asked pullcache for the shared layer %d times, want none:\n%s", n, formatRequests(reqs))
		}
		for _, b := range added {
			if n := countRequests(reqs, "GET", "/blobs/"+b); n != 1 {
				t.Errorf("pullcache log: %d GETs of new blob %s, want 1:\n%s", n, b, formatRequests(reqs))
			}
		}
	})

	t.Run("multi-platform index", func(t *testing.T) {
		mark := len(pullcacheRequests(srv.logs.String()))
		d.pullAndRun(ctx, t, "dockermulti:v1", imgs.multi)
		platform := strings.TrimSpace(d.docker(ctx, t, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", "dockermulti:v1"))
		if want := hostPlatform.OS + "/" + hostPlatform.Architecture; platform != want {
			t.Errorf("the daemon took the %s image, want %s", platform, want)
		}
		requireFetchedOnce(t, hub, blobsOf(t, imgs.multi.host))
		reqs := pullcacheRequests(srv.logs.String())[mark:]
		other := digestOf(t, imgs.multi.other.Digest)
		if n := countRequests(reqs, "GET", "/manifests/"+other); n != 0 {
			t.Errorf("the daemon fetched the other platform's manifest %s:\n%s", other, formatRequests(reqs))
		}
	})

	t.Run("ghcr.io by path prefix", func(t *testing.T) {
		mark := len(pullcacheRequests(srv.logs.String()))
		d.pullAndRun(ctx, t, appImage, imgs.app)
		requireFetchedOnce(t, ghcr, blobsOf(t, imgs.app.image))
		for _, line := range hub.requestLog() {
			if strings.Contains(line, "org/app") {
				t.Errorf("docker.io's upstream was asked for ghcr.io's image: %s", line)
			}
		}
		for _, r := range pullcacheRequests(srv.logs.String())[mark:] {
			if !strings.HasPrefix(r.path, "/v2/ghcr.io/org/app/") && r.path != "/v2/" {
				t.Errorf("pullcache log: unexpected request %s %s", r.method, r.path)
			}
			if r.path != "/v2/" && r.registry != "ghcr.io" {
				t.Errorf("pullcache log: %s %s routed to registry %q, want ghcr.io", r.method, r.path, r.registry)
			}
		}
	})

	t.Run("upstreams gone", func(t *testing.T) {
		hub.stop()
		ghcr.stop()
		d.removeAllImages(ctx, t)
		mark := len(pullcacheRequests(srv.logs.String()))
		d.pullAndRun(ctx, t, "dockerhello:v1", imgs.v1)
		d.pullAndRun(ctx, t, "dockerhello:v2", imgs.v2)
		d.pullAndRun(ctx, t, "dockermulti:v1", imgs.multi)
		d.pullAndRun(ctx, t, appImage, imgs.app)
		d.removeAllImages(ctx, t)
		byDigest := "dockerhello@" + imgs.v2.manifestDigest(t)
		d.docker(ctx, t, "pull", byDigest)
		d.checkRuns(ctx, t, byDigest, imgs.v2)
		stale := 0
		for _, r := range pullcacheRequests(srv.logs.String())[mark:] {
			if r.route == "manifest" && r.cache == "stale" {
				stale++
			}
		}
		if stale == 0 {
			t.Errorf("no manifest was served stale with the upstreams gone:\n%s", formatRequests(pullcacheRequests(srv.logs.String())[mark:]))
		}
		if d.hubAttempts() != nil {
			t.Errorf("the daemon went past the mirror: %v", d.hubAttempts())
		}
	})
}

// TestDockerSaveImportServeOffline is the seed round trip: images pulled
// through the mirror are saved with `docker save`, imported into a fresh
// data directory, served --offline, removed from the daemon and pulled back
// through the mirror: they run, with the same image IDs. Then the way into
// an engine not configured with the mirror: `docker load` does not read
// `pullcache export` (an OCI layout); a pull by the mirror's address does.
func TestDockerSaveImportServeOffline(t *testing.T) {
	ctx := context.Background()
	requireDocker(t)
	imgs := loadDockerImages(t)
	hub := newUpstream(t)
	pushRunnable(t, hub, imgs.v1, imgs.v2)
	connected := startPullcache(t, t.TempDir(), map[string]string{"docker.io": hub.url()})
	d := startDockerd(ctx, t, dockerdOptions{Mirrors: []string{"http://" + connected.addr}})
	d.pullAndRun(ctx, t, "dockerhello:v1", imgs.v1)
	d.pullAndRun(ctx, t, "dockerhello:v2", imgs.v2)
	ids := map[string]string{"dockerhello:v1": imgs.v1.imageID(t), "dockerhello:v2": imgs.v2.imageID(t)}

	work := t.TempDir()
	saved := filepath.Join(work, "saved.tar")
	d.docker(ctx, t, "save", "-o", saved, "dockerhello:v1", "dockerhello:v2")
	fresh := shortTempDir(t) // the admin socket's path must stay short
	out := pullcacheCmd(ctx, t, "import", "--data", fresh, saved)
	for _, want := range []string{"docker.io/library/dockerhello:v1", "docker.io/library/dockerhello:v2"} {
		if !strings.Contains(out, want) {
			t.Errorf("pullcache import output lacks %s:\n%s", want, out)
		}
	}
	connected.stop()
	hub.stop()

	offline := startPullcache(t, fresh, nil, "--offline")
	d.reload(ctx, t, dockerdOptions{Mirrors: []string{"http://" + offline.addr}})
	d.removeAllImages(ctx, t)
	for image, r := range map[string]*runnable{"dockerhello:v1": imgs.v1, "dockerhello:v2": imgs.v2} {
		// A legacy save holds no registry manifest: import writes one, so the
		// digest differs from the upstream's; the image ID must not.
		d.docker(ctx, t, "pull", image)
		d.checkRuns(ctx, t, image, r)
	}
	listed := d.docker(ctx, t, "images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
	for image, id := range ids {
		if !strings.Contains(listed, image+" "+id) {
			t.Errorf("docker images does not show %s with ID %s:\n%s", image, id, listed)
		}
	}
	if d.hubAttempts() != nil {
		t.Errorf("the daemon went past the mirror: %v", d.hubAttempts())
	}

	t.Run("into an engine without a registry", func(t *testing.T) {
		// pullcache export writes an OCI layout with docker save's
		// manifest.json beside it: docker load reads it, no mirror needed.
		bundle := filepath.Join(work, "bundle.tar")
		pullcacheCmd(ctx, t, "export", "--data", fresh, "-o", bundle, "docker.io/library/dockerhello:v2", "docker.io/library/dockerhello:v1")
		d.removeAllImages(ctx, t)
		out := d.docker(ctx, t, "load", "-i", bundle)
		for image, r := range map[string]*runnable{"dockerhello:v1": imgs.v1, "dockerhello:v2": imgs.v2} {
			if !strings.Contains(out, image) {
				t.Errorf("docker load does not say it loaded %s:\n%s", image, out)
			}
			d.checkRuns(ctx, t, image, r)
		}
		listed := d.docker(ctx, t, "images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
		for image, id := range ids {
			if !strings.Contains(listed, image+" "+id) {
				t.Errorf("after docker load, docker images does not show %s with ID %s:\n%s", image, id, listed)
			}
		}
		// The bundle still imports as it did.
		again := shortTempDir(t)
		if out := pullcacheCmd(ctx, t, "import", "--data", again, bundle); !strings.Contains(out, "docker.io/library/dockerhello:v1") {
			t.Errorf("pullcache import of the bundle:\n%s", out)
		}
	})
}
