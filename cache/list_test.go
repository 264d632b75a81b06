package cache

import (
	"reflect"
	"testing"
	"time"
)

// TestListReadsNoIndexAndMeasuresPins: once the graph is loaded, a List
// and a pass read no graph from the index, and List measures pinned
// images as a pass does, as PinnedSize (df) does.
func TestListReadsNoIndexAndMeasuresPins(t *testing.T) {
	s, _ := policyStore(t, Options{Pins: []string{"docker.io/library/keep:*"}})
	shared := putBlob(t, s, randomBytes(t, 8<<10))
	putImage(t, s, "keep", []int{16 << 10}, shared)
	putImage(t, s, "loose", []int{16 << 10}, shared)
	before := s.graphReads.Load()
	l, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Images) != 2 {
		t.Fatalf("listed %d images, want 2", len(l.Images))
	}
	rep, err := s.GC(true)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.graphReads.Load() - before; n != 0 {
		t.Errorf("List and a pass read the graph from the index %d times, want none", n)
	}
	if l.Pinned != rep.Pinned {
		t.Errorf("List says pinned images occupy %d bytes, a pass %d", l.Pinned, rep.Pinned)
	}
	if l.Pinned == 0 {
		t.Error("no pinned bytes measured")
	}
	pinned, err := s.PinnedSize()
	if err != nil {
		t.Fatal(err)
	}
	if pinned != rep.Pinned {
		t.Errorf("PinnedSize says %d bytes, a pass %d", pinned, rep.Pinned)
	}
}

// TestTheGraphInMemoryAgreesWithTheIndex: after writes of every kind
// (manifests, tags moved and deleted, imports, pins, pulls, an eviction,
// a removal), the graph kept in memory lists what a graph read afresh
// from the index lists.
func TestTheGraphInMemoryAgreesWithTheIndex(t *testing.T) {
	s, clock := policyStore(t, Options{})
	shared := putBlob(t, s, randomBytes(t, 8<<10))
	imgs := []image{}
	for i, name := range []string{"a", "b", "c", "d"} {
		clock.set(epoch.Add(time.Duration(i) * time.Minute))
		imgs = append(imgs, putImage(t, s, name, []int{4 << 10, 2 << 10}, shared))
	}
	pull(t, s, clock, 10*time.Minute, imgs[0].m.Digest)
	moved := imgs[2]
	if err := s.ConfirmTag(moved.repo, "other", imgs[1].m.Digest, clock.now()); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTag(imgs[3].repo, "v1"); err != nil {
		t.Fatal(err)
	}
	importOne(t, s, Repo{Registry: "docker.io", Name: "library/imported"}, "imported", "v1")
	if _, err := s.Remove([]ImageRef{{Repo: imgs[1].repo, Tag: "v1"}}, false); err != nil {
		t.Fatal(err)
	}
	evictNeed(t, s, 1)
	s.access.flush()
	fresh, err := s.loadGraph(true)
	if err != nil {
		t.Fatal(err)
	}
	fresh.patterns = s.pinPatterns()
	fresh.link()
	var live Listing
	_ = s.graph.use(func(g *graph) error { live = g.listing(); return nil })
	want := fresh.listing()
	live.Images, want.Images = sortByName(live.Images), sortByName(want.Images)
	if !reflect.DeepEqual(live, want) {
		t.Errorf("in memory:\n%+v\nread afresh:\n%+v", live, want)
	}
	if len(want.Images) < 3 {
		t.Errorf("only %d images left: the test evicted too much to compare", len(want.Images))
	}
}
