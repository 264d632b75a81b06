package cluster

import (
	"fmt"
	"math"
	"testing"
)

func members(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("http://10.0.0.%d:5000", i+1)
	}
	return out
}

func owners(keys int, ms []string) map[string]string {
	out := make(map[string]string, keys)
	for i := range keys {
		k := BlobKey(fmt.Sprintf("sha256:%064x", i))
		out[k] = Rank(k, ms)[0]
	}
	return out
}

func TestRankSpreadsKeysEvenly(t *testing.T) {
	const keys = 20000
	count := map[string]int{}
	for _, o := range owners(keys, members(5)) {
		count[o]++
	}
	for m, c := range count {
		if share := float64(c) / keys; math.Abs(share-0.2) > 0.02 {
			t.Errorf("%s owns %.3f of the keys, want 0.2±0.02", m, share)
		}
	}
}

// Adding a member moves to it only about its share of the keys, and
// nothing between the others; removing it moves back only what it owned.
func TestAddingOrRemovingAMemberMovesOnlyItsShare(t *testing.T) {
	const keys = 20000
	before := owners(keys, members(4))
	after := owners(keys, members(5))
	added := members(5)[4]
	moved := 0
	for k, o := range after {
		if o == before[k] {
			continue
		}
		moved++
		if o != added {
			t.Fatalf("key %s moved from %s to %s, not to the new member", k, before[k], o)
		}
	}
	if share := float64(moved) / keys; math.Abs(share-0.2) > 0.02 {
		t.Errorf("adding a fifth member moved %.3f of the keys, want 0.2±0.02", share)
	}
	removed := owners(keys, members(5)[1:])
	for k, o := range removed {
		if after[k] != members(5)[0] && o != after[k] {
			t.Fatalf("key %s moved from %s to %s though its owner stayed", k, after[k], o)
		}
	}
}

func TestRankIsTheSameEverywhere(t *testing.T) {
	ms := members(3)
	rev := []string{ms[2], ms[0], ms[1]}
	for i := range 100 {
		k := TagKey("docker.io", "library/alpine", fmt.Sprint(i))
		a, b := Rank(k, ms), Rank(k, rev)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("%s: order depends on the list's order: %v vs %v", k, a, b)
		}
	}
}
