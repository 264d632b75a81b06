package cache

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

func TestTagHistoryRemembersEveryDigestWithFirstAndLastSeen(t *testing.T) {
	s, clock := policyStore(t, Options{})
	repo := Repo{Registry: "docker.io", Name: "library/moving"}
	a := putImage(t, s, "a", []int{1 << 10})
	b := putImage(t, s, "b", []int{1 << 10})
	at := func(m int) time.Time { return epoch.Add(time.Duration(m) * time.Minute) }
	clock.set(at(1))
	if err := s.PutManifest(repo, a.m, "latest", at(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.ConfirmTag(repo, "latest", a.m.Digest, at(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.ConfirmTag(repo, "latest", b.m.Digest, at(3)); err != nil { // the tag moved
		t.Fatal(err)
	}
	if err := s.ConfirmTag(repo, "latest", b.m.Digest, at(4)); err != nil {
		t.Fatal(err)
	}
	hist, err := s.History(repo, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Fatalf("history = %+v, want two digests", hist)
	}
	if hist[0].Digest != b.m.Digest || !hist[0].First.Equal(at(3)) || !hist[0].Last.Equal(at(4)) {
		t.Errorf("newest = %+v", hist[0])
	}
	if hist[1].Digest != a.m.Digest || !hist[1].First.Equal(at(1)) || !hist[1].Last.Equal(at(2)) {
		t.Errorf("older = %+v", hist[1])
	}
	// Removing the tag keeps its history; the old digest stays pullable.
	if _, err := s.Remove([]ImageRef{{Repo: repo, Tag: "latest"}}, false); err != nil {
		t.Fatal(err)
	}
	if hist, err := s.History(repo, "latest"); err != nil || len(hist) != 2 {
		t.Errorf("history after rm: %+v %v", hist, err)
	}
	if _, err := s.Manifest(a.m.Digest); err != nil {
		t.Errorf("old digest: %v", err)
	}
	if _, err := s.History(repo, "never"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown tag: %v", err)
	}
}

func TestTagHistoryIsBounded(t *testing.T) {
	s, _ := policyStore(t, Options{})
	repo := Repo{Registry: "docker.io", Name: "library/churn"}
	for i := range HistoryLimit + 10 {
		d := digestOf([]byte(strconv.Itoa(i)))
		if err := s.ConfirmTag(repo, "v", d, epoch.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	hist, err := s.History(repo, "v")
	if err != nil || len(hist) != HistoryLimit {
		t.Fatalf("%d entries, %v; want %d", len(hist), err, HistoryLimit)
	}
	if hist[0].Digest != digestOf([]byte(strconv.Itoa(HistoryLimit+9))) {
		t.Error("the newest digest is not first")
	}
	all, err := s.RepoHistory(repo)
	if err != nil || len(all["v"]) != HistoryLimit {
		t.Errorf("RepoHistory: %d, %v", len(all["v"]), err)
	}
	if err := s.MergeHistory(repo, "v", []HistoryEntry{{Digest: hist[0].Digest, First: epoch.Add(-time.Hour), Last: hist[0].Last}}); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.History(repo, "v"); !h[0].First.Equal(epoch.Add(-time.Hour)) {
		t.Errorf("merged first seen = %v", h[0].First)
	}
}
