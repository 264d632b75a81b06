package blobs

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Verifier counts and hashes the bytes of a write, so that every Tier
// checks a blob the same way before committing it.
type Verifier struct {
	want    v1.Hash
	size    int64
	written int64
	h       hash.Hash
	// overflowed is set by a write past the size: the write as a whole is
	// then wrong, even if the bytes kept are the blob.
	overflowed bool
}

// NewVerifier checks bytes against blob want of the given size. Digests
// other than sha256 and sha512 (the algorithms OCI registers) are refused.
func NewVerifier(want v1.Hash, size int64) (*Verifier, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: negative size %d for %s", ErrSizeMismatch, size, want)
	}
	var h hash.Hash
	switch want.Algorithm {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return nil, fmt.Errorf("digest %s: %w", want, errors.ErrUnsupported)
	}
	return &Verifier{want: want, size: size, h: h}, nil
}

// Write hashes p, refusing bytes beyond the expected size.
func (v *Verifier) Write(p []byte) (int, error) {
	if int64(len(p)) > v.size-v.written {
		v.overflowed = true
		return 0, fmt.Errorf("%w: %s has %d bytes, more were written", ErrSizeMismatch, v.want, v.size)
	}
	v.written += int64(len(p))
	return v.h.Write(p)
}

// Written is how many bytes were written so far.
func (v *Verifier) Written() int64 { return v.written }

// Verify reports whether exactly the expected bytes were written.
func (v *Verifier) Verify() error {
	if v.overflowed {
		return fmt.Errorf("%w: %s has %d bytes, more were written", ErrSizeMismatch, v.want, v.size)
	}
	if v.written != v.size {
		return fmt.Errorf("%w: %s has %d bytes, %d were written", ErrSizeMismatch, v.want, v.size, v.written)
	}
	if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.Hex {
		return fmt.Errorf("%w: want %s, got %s:%s", ErrDigestMismatch, v.want, v.want.Algorithm, got)
	}
	return nil
}
