package blobstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"slices"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/cache/blobs"
)

// Memory is a Tier in memory: the suite's own check that it can pass, and a
// fast tier for unit tests of code built on the seam.
type Memory struct {
	mu    sync.Mutex
	blobs map[v1.Hash]blobs.Info
	data  map[v1.Hash][]byte
}

// NewMemory returns an empty Memory tier.
func NewMemory() *Memory {
	return &Memory{blobs: map[v1.Hash]blobs.Info{}, data: map[v1.Hash][]byte{}}
}

// Open implements blobs.Tier.
func (m *Memory) Open(ctx context.Context, h v1.Hash, offset int64) (io.ReadCloser, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	m.mu.Lock()
	b, ok := m.data[h]
	m.mu.Unlock()
	if !ok {
		return nil, 0, fmt.Errorf("%w: %s", blobs.ErrNotFound, h)
	}
	size := int64(len(b))
	if offset < 0 || offset > size {
		return nil, 0, fmt.Errorf("%w: offset %d of %s (%d bytes)", blobs.ErrOutOfRange, offset, h, size)
	}
	return io.NopCloser(bytes.NewReader(b[offset:])), size, nil
}

// Stat implements blobs.Tier.
func (m *Memory) Stat(ctx context.Context, h v1.Hash) (blobs.Info, error) {
	if err := ctx.Err(); err != nil {
		return blobs.Info{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	info, ok := m.blobs[h]
	if !ok {
		return blobs.Info{}, fmt.Errorf("%w: %s", blobs.ErrNotFound, h)
	}
	return info, nil
}

// List implements blobs.Tier. It yields a snapshot taken when the listing
// starts: memory holds every blob anyway.
func (m *Memory) List(ctx context.Context) iter.Seq2[blobs.Info, error] {
	return func(yield func(blobs.Info, error) bool) {
		m.mu.Lock()
		infos := slices.Collect(func(y func(blobs.Info) bool) {
			for _, info := range m.blobs {
				if !y(info) {
					return
				}
			}
		})
		m.mu.Unlock()
		for _, info := range infos {
			if err := ctx.Err(); err != nil {
				yield(blobs.Info{}, err)
				return
			}
			if !yield(info, nil) {
				return
			}
		}
	}
}

// Delete implements blobs.Tier.
func (m *Memory) Delete(ctx context.Context, h v1.Hash) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.blobs, h)
	delete(m.data, h)
	return nil
}

// Create implements blobs.Tier.
func (m *Memory) Create(ctx context.Context, h v1.Hash, size int64) (blobs.Writer, error) {
	v, err := blobs.NewVerifier(h, size)
	if err != nil {
		return nil, err
	}
	return &memWriter{m: m, h: h, v: v, ctxErr: ctx.Err}, nil
}

// commit makes b visible as h unless h is already there.
func (m *Memory) commit(h v1.Hash, b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.blobs[h]; ok {
		return fmt.Errorf("%w: %s", blobs.ErrExists, h)
	}
	m.blobs[h] = blobs.Info{Digest: h, Size: int64(len(b)), Modified: time.Now()}
	m.data[h] = b
	return nil
}

// memWriter buffers a write until Commit. ctxErr is the creating context's
// Err, checked at each step so a cancelled write commits nothing.
type memWriter struct {
	m      *Memory
	h      v1.Hash
	v      *blobs.Verifier
	ctxErr func() error
	buf    bytes.Buffer
	closed bool
}

func (w *memWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, blobs.ErrClosed
	}
	if err := w.ctxErr(); err != nil {
		return 0, err
	}
	if _, err := w.v.Write(p); err != nil {
		return 0, err
	}
	return w.buf.Write(p)
}

func (w *memWriter) Commit() error {
	if w.closed {
		return blobs.ErrClosed
	}
	w.closed = true
	if err := w.ctxErr(); err != nil {
		return err
	}
	if err := w.v.Verify(); err != nil {
		return err
	}
	return w.m.commit(w.h, bytes.Clone(w.buf.Bytes()))
}

func (w *memWriter) Cancel() error {
	w.closed = true
	w.buf = bytes.Buffer{}
	return nil
}
