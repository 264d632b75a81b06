package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maintenanceRun drives ls, pin, unpin, history, df, rm, gc and verify on
// data, which holds docker.io/library/app:v1 and multi:v1.
func maintenanceRun(t *testing.T, data string) {
	t.Helper()
	out := mustRun(t, "ls", "--data", data)
	for _, want := range []string{"docker.io/library/app:v1", "docker.io/library/multi:v1", "IMAGE", "LAST PULLED", "2 images"} {
		if !strings.Contains(out, want) {
			t.Errorf("ls output lacks %q:\n%s", want, out)
		}
	}
	var imgs []struct {
		Name       string   `json:"name"`
		Platforms  []string `json:"platforms"`
		Size       int64    `json:"size"`
		UniqueSize int64    `json:"unique_size"`
		Pinned     bool     `json:"pinned"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "ls", "--data", data, "--json", "library/multi:*")), &imgs); err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || len(imgs[0].Platforms) != 2 || imgs[0].Size <= 0 {
		t.Errorf("ls --json multi: %+v", imgs)
	}
	if out := mustRun(t, "pin", "--data", data, "app:v1"); !strings.Contains(out, "pinned docker.io/library/app:v1") {
		t.Errorf("pin: %q", out)
	}
	if out := mustRun(t, "ls", "--data", data, "app"); !strings.Contains(out, "pinned") {
		t.Errorf("ls after pin: %q", out)
	}
	if out := mustRun(t, "unpin", "--data", data, "app:v1"); !strings.Contains(out, "unpinned docker.io/library/app:v1") {
		t.Errorf("unpin: %q", out)
	}
	if code, _, stderr := runCmd(t, "unpin", "--data", data, "app:v1"); code != 1 || !strings.Contains(stderr, "not pinned") {
		t.Errorf("unpin twice: %d %q", code, stderr)
	}
	if out := mustRun(t, "history", "--data", data, "app:v1"); !strings.Contains(out, "docker.io/library/app:v1") || !strings.Contains(out, "sha256:") {
		t.Errorf("history: %q", out)
	}
	if out := mustRun(t, "df", "--data", data); !strings.Contains(out, "blobs") || !strings.Contains(out, "reclaimable") {
		t.Errorf("df: %q", out)
	}
	if out := mustRun(t, "rm", "--data", data, "--dry-run", "multi:v1"); !strings.Contains(out, "would evict docker.io/library/multi:v1") {
		t.Errorf("rm --dry-run: %q", out)
	}
	if out := mustRun(t, "rm", "--data", data, "multi:v1"); !strings.Contains(out, "evicted docker.io/library/multi:v1") {
		t.Errorf("rm: %q", out)
	}
	if out := mustRun(t, "ls", "--data", data); strings.Contains(out, "multi") {
		t.Errorf("ls after rm: %q", out)
	}
	if out := mustRun(t, "gc", "--data", data, "--dry-run"); !strings.Contains(out, "would free") {
		t.Errorf("gc --dry-run: %q", out)
	}
	mustRun(t, "gc", "--data", data)
	if out := mustRun(t, "verify", "--data", data); !strings.Contains(out, "the store is sound") {
		t.Errorf("verify: %q", out)
	}
	if code, _, stderr := runCmd(t, "rm", "--data", data, "nothing:1"); code != 1 || !strings.Contains(stderr, "nothing") {
		t.Errorf("rm of an unknown image: %d %q", code, stderr)
	}
}

func TestMaintenanceCommandsThroughTheRunningServer(t *testing.T) {
	up, _ := newTestUpstream(t)
	data := t.TempDir()
	serveInProcess(t, data, up.URL)
	mustRun(t, "warm", "--data", data, "app:v1", "multi:v1")
	maintenanceRun(t, data)
}

func TestMaintenanceCommandsOffline(t *testing.T) {
	up, _ := newTestUpstream(t)
	src := t.TempDir()
	bundle := filepath.Join(t.TempDir(), "b.tar")
	serveAndExport(t, src, up.URL, bundle)
	data := t.TempDir()
	mustRun(t, "import", "--data", data, bundle)
	maintenanceRun(t, data)
	// A corrupt blob: verify says so and exits 1; --repair fixes it.
	var victim string
	filepath.WalkDir(filepath.Join(data, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && victim == "" {
			victim = p
		}
		return nil
	})
	if err := os.WriteFile(victim, []byte("rot"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCmd(t, "verify", "--data", data)
	if code != 1 || !strings.Contains(out, "corrupt: sha256:") || !strings.Contains(stderr, "verify found problems") {
		t.Errorf("verify of a corrupt store: %d %q %q", code, out, stderr)
	}
	if out := mustRun(t, "verify", "--data", data, "--repair"); !strings.Contains(out, "quarantined:") {
		t.Errorf("verify --repair: %q", out)
	}
	mustRun(t, "verify", "--data", data)
}

// serveAndExport warms app:v1 and multi:v1 through a server on src, stops
// it and exports them to bundle.
func serveAndExport(t *testing.T, src, upstream, bundle string) {
	t.Run("fill", func(t *testing.T) {
		serveInProcess(t, src, upstream)
		mustRun(t, "warm", "--data", src, "app:v1", "multi:v1")
	})
	// The server has stopped, its last fills committed: export offline.
	mustRun(t, "export", "--data", src, "-o", bundle, "app:v1", "multi:v1")
}
