package cache

import "testing"

// TestListReadsTheGraphOnceAndMeasuresPins: one List is one read of the
// graph, and it measures pinned images as a pass does, as PinnedSize (df)
// does.
func TestListReadsTheGraphOnceAndMeasuresPins(t *testing.T) {
	s, _ := policyStore(t, Options{Pins: []string{"docker.io/library/keep:*"}})
	shared := putBlob(t, s, randomBytes(t, 8<<10))
	putImage(t, s, "keep", []int{16 << 10}, shared)
	putImage(t, s, "loose", []int{16 << 10}, shared)
	before := s.graphReads.Load()
	l, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if n := s.graphReads.Load() - before; n != 1 {
		t.Errorf("List read the graph %d times, want once", n)
	}
	if len(l.Images) != 2 {
		t.Fatalf("listed %d images, want 2", len(l.Images))
	}
	rep, err := s.GC(true)
	if err != nil {
		t.Fatal(err)
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
