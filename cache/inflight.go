package cache

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// inFlight returns the fill of h in flight, if there is one, without
// starting one: a HEAD of a blob being filled is answered from it.
func (s *Store) inFlight(h v1.Hash) (*Fill, bool) {
	s.fills.mu.Lock()
	defer s.fills.mu.Unlock()
	f, ok := s.fills.m[h]
	return f, ok
}

// Digest is the digest of the blob being filled.
func (f *Fill) Digest() v1.Hash { return f.digest }

// WaitFill returns once no fill of blob h is in flight, with the error of
// the fill it waited for, if that failed. A client that read a fill's last
// byte is ahead of its commit: readers get the bytes as soon as they are
// verified, while the fill still makes the file durable and records it in
// the index. Once WaitFill returned nil after such a read, Store opens,
// the index and exports find the blob. It returns ctx's error if ctx ends
// first.
func (s *Store) WaitFill(ctx context.Context, h v1.Hash) error {
	f, ok := s.inFlight(h)
	if !ok {
		return nil
	}
	// A fill leaves the map after its commit was recorded, and Done is
	// closed after that.
	select {
	case <-f.Done():
		return f.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}
