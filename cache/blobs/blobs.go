// Package blobs is the seam between the cache and the places blobs live: a
// Tier stores blobs by digest (local files, an S3-compatible bucket, memory)
// and every implementation passes the contract suite in blobs/blobstest.
//
// It is for content-addressed blobs only: no tags, manifests by tag, index
// records or eviction policy live here, and a Tier knows nothing of
// repositories. Content addressing is what keeps the seam small: a blob
// written twice is the same blob, so a second commit of a digest is harmless
// and reported as ErrExists instead of being a conflict to resolve.
//
// Abilities only some tiers have (sendfile from a local file, readers that
// follow a blob still being written) are optional capabilities that callers
// discover by type assertion on the Tier or on the reader Open returns, as
// go-containerregistry's pkg/registry discovers BlobStatHandler.
package blobs

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Tier is a place blobs live, by digest. Its methods are safe for
// concurrent use.
type Tier interface {
	// Open returns a reader of blob h's bytes from offset to its end, and
	// the size of the whole blob. 0 <= offset <= size, else ErrOutOfRange;
	// a caller that wants fewer bytes closes the reader early. ErrNotFound
	// when the tier has no committed blob h.
	Open(ctx context.Context, h v1.Hash, offset int64) (io.ReadCloser, int64, error)
	// Create starts a streamed write of blob h, which must be size bytes.
	// ctx governs the whole write: cancelling it aborts the write. Nothing
	// is visible to Open, Stat or List until Commit succeeds. Create may
	// report ErrExists at once when it knows h is already there.
	Create(ctx context.Context, h v1.Hash, size int64) (Writer, error)
	// Stat describes committed blob h, or reports ErrNotFound.
	Stat(ctx context.Context, h v1.Hash) (Info, error)
	// List yields every committed blob once, in no promised order, without
	// holding them all in memory. A blob committed or deleted while the
	// listing runs may or may not appear. An error ends the listing.
	List(ctx context.Context) iter.Seq2[Info, error]
	// Delete removes blob h. Deleting an absent blob is not an error: the
	// caller asked for its absence, and has it.
	Delete(ctx context.Context, h v1.Hash) error
}

// Writer is one streamed write of a blob, from Tier.Create, used by one
// goroutine at a time.
type Writer interface {
	// Write adds bytes; more bytes than the size given to Create fail with
	// ErrSizeMismatch.
	io.Writer
	// Commit verifies the size and digest of what was written and only then
	// makes the blob visible, all of it at once. It reports ErrSizeMismatch
	// or ErrDigestMismatch (nothing committed), ErrExists (the blob was
	// already there: the caller has what it wanted), or the error that
	// aborted the write.
	Commit() error
	// Cancel abandons the write, leaving nothing behind. It is safe to call
	// after Commit or more than once (then it does nothing), so callers may
	// defer it.
	Cancel() error
}

// Info describes a committed blob.
type Info struct {
	Digest v1.Hash
	Size   int64
	// Modified is when the tier committed the blob, by the tier's clock: a
	// sweep spares blobs younger than its grace period.
	Modified time.Time
}

// The errors of the seam, compared with errors.Is; implementations wrap them
// with detail.
var (
	ErrNotFound       = errors.New("blob not found")
	ErrExists         = errors.New("blob already exists")
	ErrDigestMismatch = errors.New("blob digest mismatch")
	ErrSizeMismatch   = errors.New("blob size mismatch")
	ErrOutOfRange     = errors.New("offset outside the blob")
	// ErrClosed is a Write or Commit after the writer was committed or
	// cancelled.
	ErrClosed = errors.New("blob writer closed")
)
