// Package local is the blob tier of one machine's disk: a blob is a file
// named by its digest, blobs/<algorithm>/<2 hex>/<hex>, written as a temp
// file in tmp/ and renamed into place once its bytes were verified (and
// made durable), so a file's existence is the proof that it is complete.
//
// Beyond blobs.Tier it lends what only local files can: the committed
// file itself (Path, and the *os.File Open returns, which net/http sends
// with sendfile), and the temp file of a write in progress (Writer.File),
// which readers follow while it grows.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/cache/blobs"
)

// Tier keeps blobs under a directory.
type Tier struct {
	root string // holds blobs/ and tmp/
}

// New returns the tier under dir, creating blobs/ and tmp/ there.
func New(dir string) (*Tier, error) {
	for _, d := range []string{"blobs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	return &Tier{root: dir}, nil
}

var _ blobs.Tier = (*Tier)(nil)

// Path is where blob h's committed file lives (or would).
func (t *Tier) Path(h v1.Hash) string {
	prefix := h.Hex
	if len(prefix) > 2 {
		prefix = prefix[:2]
	}
	return filepath.Join(t.root, "blobs", h.Algorithm, prefix, h.Hex)
}

// TempDir is where writes in progress keep their files.
func (t *Tier) TempDir() string { return filepath.Join(t.root, "tmp") }

// Open opens blob h's committed file at offset. The reader is an *os.File.
func (t *Tier) Open(_ context.Context, h v1.Hash, offset int64) (io.ReadCloser, int64, error) {
	f, err := os.Open(t.Path(h))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("%s: %w", h, blobs.ErrNotFound)
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if offset < 0 || offset > fi.Size() {
		f.Close()
		return nil, 0, fmt.Errorf("%s at %d of %d: %w", h, offset, fi.Size(), blobs.ErrOutOfRange)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// Stat describes blob h's committed file.
func (t *Tier) Stat(_ context.Context, h v1.Hash) (blobs.Info, error) {
	fi, err := os.Stat(t.Path(h))
	if errors.Is(err, os.ErrNotExist) {
		return blobs.Info{}, fmt.Errorf("%s: %w", h, blobs.ErrNotFound)
	}
	if err != nil {
		return blobs.Info{}, err
	}
	return blobs.Info{Digest: h, Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// List walks the blob directories; names that are not digests are skipped.
func (t *Tier) List(ctx context.Context) iter.Seq2[blobs.Info, error] {
	return func(yield func(blobs.Info, error) bool) {
		err := filepath.WalkDir(filepath.Join(t.root, "blobs"), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			alg := filepath.Base(filepath.Dir(filepath.Dir(p)))
			h, herr := v1.NewHash(alg + ":" + d.Name())
			fi, ierr := d.Info()
			if herr != nil || ierr != nil {
				return nil // not a blob, or gone since the directory was read
			}
			if !yield(blobs.Info{Digest: h, Size: fi.Size(), Modified: fi.ModTime()}, nil) {
				return fs.SkipAll
			}
			return nil
		})
		if err != nil {
			yield(blobs.Info{}, err)
		}
	}
}

// Delete removes blob h's file; an absent one is not an error.
func (t *Tier) Delete(_ context.Context, h v1.Hash) error {
	if err := os.Remove(t.Path(h)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Create starts a write of blob h into a temp file.
func (t *Tier) Create(ctx context.Context, h v1.Hash, size int64) (blobs.Writer, error) {
	return t.NewWriter(ctx, h, size)
}

// NewWriter is Create with the local writer's own type, whose temp file a
// caller may lend to readers (Writer.File).
func (t *Tier) NewWriter(ctx context.Context, h v1.Hash, size int64) (*Writer, error) {
	v, err := blobs.NewVerifier(h, size)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(t.Path(h)); err == nil {
		return nil, fmt.Errorf("%s: %w", h, blobs.ErrExists)
	}
	f, err := os.CreateTemp(t.TempDir(), h.Hex+"-*")
	if err != nil {
		return nil, fmt.Errorf("create temp file: %w", err)
	}
	return &Writer{t: t, ctx: ctx, h: h, f: f, v: v}, nil
}

// Writer is one write of a blob into a temp file.
type Writer struct {
	t    *Tier
	ctx  context.Context
	h    v1.Hash
	f    *os.File
	v    *blobs.Verifier
	done bool
}

// File is the temp file being written: readers may follow it (ReadAt up to
// what was written) until Commit moves it into place or Cancel removes it.
func (w *Writer) File() *os.File { return w.f }

// Write appends p to the temp file, counting and hashing it.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, blobs.ErrClosed
	}
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	if _, err := w.v.Write(p); err != nil {
		return 0, err
	}
	return w.f.Write(p)
}

// Commit verifies size and digest, makes the file durable and renames it
// into place; nothing is left behind on failure.
func (w *Writer) Commit() error {
	if w.done {
		return blobs.ErrClosed
	}
	if err := errors.Join(w.ctx.Err(), w.v.Verify()); err != nil {
		w.Cancel()
		return err
	}
	w.done = true
	if err := w.commit(); err != nil {
		os.Remove(w.f.Name())
		return err
	}
	return nil
}

func (w *Writer) commit() error {
	err := w.t.Place(w.f, w.h)
	return errors.Join(err, w.f.Close())
}

// Place commits a temp file whose bytes were verified as blob h: it is
// made durable, then moved to its path. Every blob file of the store
// lands there through Place. f stays open (readers of a fill hold it).
func (t *Tier) Place(f *os.File, h v1.Hash) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync blob: %w", err)
	}
	dst := t.Path(h)
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return fmt.Errorf("create blob dir: %w", err)
	}
	// A link, not a rename: it fails if the blob is there, so of two
	// writes of one blob exactly one commits (the other has what it
	// wanted: ErrExists).
	err := os.Link(f.Name(), dst)
	if errors.Is(err, fs.ErrExist) {
		os.Remove(f.Name())
		return fmt.Errorf("%s: %w", h, blobs.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("commit blob: %w", err)
	}
	os.Remove(f.Name()) // a leftover is cleared with tmp/ at the next start
	return nil
}

// Cancel removes the temp file; after Commit it does nothing.
func (w *Writer) Cancel() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	return os.Remove(w.f.Name())
}
