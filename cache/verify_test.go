package cache

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestVerifyFindsAndRepairsDamage(t *testing.T) {
	s, _ := policyStore(t, Options{})
	img := putImage(t, s, "damaged", []int{8 << 10, 8 << 10})
	if rep, err := s.Verify(VerifyOptions{}); err != nil || !rep.Clean() {
		t.Fatalf("a fresh store: %+v %v", rep, err)
	}
	corrupt, gone := img.layers[0].Digest, img.layers[1].Digest
	// A warm blob: its descriptor is kept for the next request.
	if b, err := s.lendBlob(corrupt); err == nil {
		b.Close()
	}
	if err := os.WriteFile(s.blobPath(corrupt), []byte("bit rot"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(s.blobPath(gone)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.blobPath(img.m.Digest), []byte("not the manifest"), 0o600); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(s.dir, "blobs", "sha256", "zz")
	if err := os.WriteFile(stray, []byte("?"), 0o600); err != nil {
		t.Fatal(err)
	}
	var progress int64
	rep, err := s.Verify(VerifyOptions{Progress: func(done, _ int64) { progress = done }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Clean() || len(rep.Corrupt) != 2 || rep.MissingFiles != 1 || len(rep.Stray) != 1 {
		t.Fatalf("damage not found: %+v", rep)
	}
	if progress == 0 {
		t.Error("no progress reported")
	}
	rep, err = s.Verify(VerifyOptions{Repair: true})
	if err != nil || !rep.Repaired || len(rep.Quarantined) != 3 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	if rep, err := s.Verify(VerifyOptions{}); err != nil || !rep.Clean() {
		t.Fatalf("after repair: %+v %v", rep, err)
	}
	s.hotMan.Purge()
	if _, err := s.Manifest(img.m.Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("the corrupt manifest is still served: %v", err)
	}
	if s.HasBlob(corrupt) {
		t.Error("the corrupt layer is still in place")
	}
	if b, err := s.lendBlob(corrupt); !errors.Is(err, ErrNotFound) {
		if b != nil {
			b.Close()
		}
		t.Errorf("the quarantined layer is still served from a kept descriptor: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "quarantine", "sha256-"+corrupt.Hex)); err != nil {
		t.Errorf("not quarantined: %v", err)
	}
}
