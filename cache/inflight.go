package cache

import v1 "github.com/google/go-containerregistry/pkg/v1"

// InFlight returns the fill of h in flight, if there is one, without
// starting one: a HEAD of a blob being filled is answered from it.
func (s *Store) InFlight(h v1.Hash) (*Fill, bool) {
	s.fills.mu.Lock()
	defer s.fills.mu.Unlock()
	f, ok := s.fills.m[h]
	return f, ok
}

// Digest is the digest of the blob being filled.
func (f *Fill) Digest() v1.Hash { return f.digest }
