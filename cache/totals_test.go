package cache

import "testing"

func TestEvictionTotalsCountPassesNotDryRuns(t *testing.T) {
	s, _ := policyStore(t, Options{})
	img := putImage(t, s, "totals", []int{8 << 10})
	if _, err := s.Remove([]ImageRef{{Repo: img.repo, Tag: "v1"}}, true); err != nil {
		t.Fatal(err)
	}
	if got := s.EvictionTotals(); got != (EvictionTotals{}) {
		t.Errorf("after a dry run: %+v, want nothing counted", got)
	}
	rep, err := s.Remove([]ImageRef{{Repo: img.repo, Tag: "v1"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	got := s.EvictionTotals()
	if got.Passes != 1 {
		t.Errorf("passes %d, want 1", got.Passes)
	}
	if got.Images != 1 {
		t.Errorf("images %d, want 1", got.Images)
	}
	if got.Freed != rep.Freed || got.Freed == 0 {
		t.Errorf("freed %d, want the pass's %d", got.Freed, rep.Freed)
	}
}
