package cache

import (
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FillStatus is a fill in flight, at one moment.
type FillStatus struct {
	Digest v1.Hash
	// Origin is what the starter said of the source (the repository).
	Origin string
	// Written is the bytes that have arrived; Size the whole, or -1 while
	// unknown.
	Written, Size int64
	Started       time.Time
}

// Fills lists the fills in flight, oldest first.
func (s *Store) Fills() []FillStatus {
	s.fills.mu.Lock()
	fills := make([]*Fill, 0, len(s.fills.m))
	for _, f := range s.fills.m {
		fills = append(fills, f)
	}
	s.fills.mu.Unlock()
	out := make([]FillStatus, 0, len(fills))
	for _, f := range fills {
		f.mu.Lock()
		out = append(out, FillStatus{Digest: f.digest, Origin: f.Origin, Written: f.written, Size: f.size, Started: f.started})
		f.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}
