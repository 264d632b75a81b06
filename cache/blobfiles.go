package cache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	lru "github.com/hashicorp/golang-lru/v2"
)

// blobFiles keeps descriptors of hot committed blobs open, so a warm
// request costs no open, stat and close. Each blob has a few idle
// descriptors of its own, lent to one request at a time: sendfile sends
// from a descriptor's file position, so two requests must never share one.
// The pool is bounded (an LRU of blobs, a few descriptors each) and a blob
// that leaves it, or is removed from the store, has its descriptors closed:
// an open descriptor would keep a deleted blob's disk space, and its bytes.
type blobFiles struct {
	mu    sync.Mutex
	blobs *lru.Cache[v1.Hash, *hotBlob]
}

// hotBlob is one blob's idle descriptors. gone is set when the blob left
// the pool or the store: descriptors lent out are then closed on return.
type hotBlob struct {
	size int64
	idle []*os.File
	gone bool
}

// idlePerBlob bounds the idle descriptors kept per blob: as many as
// requests for it usually run at once.
const idlePerBlob = 8

func newBlobFiles(blobs int) *blobFiles {
	p := &blobFiles{}
	p.blobs, _ = lru.NewWithEvict(blobs, func(_ v1.Hash, b *hotBlob) { b.close() })
	return p
}

// close drops the blob's idle descriptors; called with p.mu held.
func (b *hotBlob) close() {
	b.gone = true
	for _, f := range b.idle {
		f.Close()
	}
	b.idle = nil
}

// take lends an idle descriptor of h, if the pool has one.
func (p *blobFiles) take(h v1.Hash) (*hotBlob, *os.File) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.blobs.Get(h)
	if !ok || len(b.idle) == 0 {
		return nil, nil
	}
	f := b.idle[len(b.idle)-1]
	b.idle = b.idle[:len(b.idle)-1]
	return b, f
}

// entry returns h's entry, adding one of the given size if there is none.
func (p *blobFiles) entry(h v1.Hash, size int64) *hotBlob {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.blobs.Get(h)
	if !ok {
		b = &hotBlob{size: size}
		p.blobs.Add(h, b)
	}
	return b
}

// forget marks b gone (its descriptors are closed on return) and drops it
// from the pool if it is still there.
func (p *blobFiles) forget(h v1.Hash, b *hotBlob) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.blobs.Peek(h); ok && cur == b {
		p.blobs.Remove(h)
	}
	b.close()
}

// give takes a descriptor back after a request.
func (p *blobFiles) give(b *hotBlob, f *os.File) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.gone || len(b.idle) >= idlePerBlob {
		f.Close()
		return
	}
	b.idle = append(b.idle, f)
}

// drop closes every idle descriptor of h and marks those lent out to be
// closed on return.
func (p *blobFiles) drop(h v1.Hash) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blobs.Remove(h) // the eviction callback closes its entry
}

func (p *blobFiles) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blobs.Purge()
}

// BlobFile is a committed blob open for one request, on a descriptor lent
// by the store. It is an io.ReadSeeker for http.ServeContent and keeps
// sendfile: net/http's sendfile path reaches the descriptor through
// SyscallConn. Close gives the descriptor back.
type BlobFile struct {
	f    *os.File
	size int64
	hot  *hotBlob
	pool *blobFiles
	// atStart: the descriptor is known to be at offset 0, so seeking
	// there needs no system call.
	atStart bool
}

// Size is the blob's size.
func (b *BlobFile) Size() int64 { return b.size }

func (b *BlobFile) Read(p []byte) (int, error) {
	b.atStart = false
	return b.f.Read(p)
}

// Seek seeks the descriptor. http.ServeContent seeks to the end to learn
// the size and then back to where it sends from: neither costs a system
// call here when the answer is known.
func (b *BlobFile) Seek(offset int64, whence int) (int64, error) {
	switch {
	case whence == io.SeekEnd && offset == 0:
		return b.size, nil
	case whence == io.SeekStart && offset == 0 && b.atStart:
		return 0, nil
	}
	b.atStart = false
	return b.f.Seek(offset, whence)
}

// SyscallConn lets net/http send the blob with sendfile, which moves the
// descriptor's offset.
func (b *BlobFile) SyscallConn() (syscall.RawConn, error) {
	b.atStart = false
	return b.f.SyscallConn()
}

// Close gives the descriptor back to the store.
func (b *BlobFile) Close() error {
	if b.f == nil {
		return errors.New("blob file already closed")
	}
	b.pool.give(b.hot, b.f)
	b.f = nil
	return nil
}

// lendBlob opens a committed blob for one request and records an access,
// like OpenBlob, on a descriptor kept open between requests. The caller
// closes it.
func (s *Store) lendBlob(h v1.Hash) (*BlobFile, error) {
	if hot, f := s.files.take(h); f != nil {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("rewind blob: %w", err)
		}
		s.access.touch(h)
		return &BlobFile{f: f, size: hot.size, hot: hot, pool: s.files, atStart: true}, nil
	}
	f, err := os.Open(s.blobPath(h))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat blob: %w", err)
	}
	hot := s.files.entry(h, st.Size)
	// The link count is read after the entry exists: if removeBlob
	// unlinked the file before, the count is 0 and the entry is dropped
	// here; if after, its drop finds the entry.
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil || st.Nlink == 0 {
		s.files.forget(h, hot)
		f.Close()
		return nil, ErrNotFound
	}
	s.access.touch(h)
	return &BlobFile{f: f, size: st.Size, hot: hot, pool: s.files, atStart: true}, nil
}

// removeBlob deletes a committed blob's file. Every deletion or
// replacement of a blob file goes through it: it also closes the
// descriptors the store keeps open for the blob, which would otherwise keep
// the deleted file's disk space in use and go on serving its bytes.
func (s *Store) removeBlob(h v1.Hash) error {
	err := os.Remove(s.blobPath(h))
	// Drop after the unlink: a request that takes a descriptor from here
	// on opens the path and finds nothing.
	s.files.drop(h)
	if errors.Is(err, os.ErrNotExist) {
		return ErrNotFound
	}
	return err
}
