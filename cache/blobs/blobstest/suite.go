// Package blobstest is the contract every blobs.Tier must pass (Run), and
// Memory, an in-memory Tier that passes it. Each implementation's tests call
// Run with a constructor of empty tiers, as spegel's storetest and
// distribution's driver testsuites do, so local files, S3 and memory are held
// to one meaning of "committed".
package blobstest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/cache/blobs"
)

// LargeSize is the size of the suite's large blob: over two 5 MiB parts, so
// a multipart implementation writes at least three parts, the last short.
const LargeSize = 2*5<<20 + 12345

// Run runs the contract against tiers made by newTier, which must return an
// empty tier each call and clean it up with t.Cleanup.
func Run(t *testing.T, newTier func(t *testing.T) blobs.Tier) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newTier(t)) })
	t.Run("Ranges", func(t *testing.T) { testRanges(t, newTier(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newTier(t)) })
	t.Run("ExistsAfterCommit", func(t *testing.T) { testExists(t, newTier(t)) })
	t.Run("ConcurrentWritersSmall", func(t *testing.T) { testConcurrentWriters(t, newTier(t), 100<<10) })
	t.Run("ConcurrentWritersLarge", func(t *testing.T) { testConcurrentWriters(t, newTier(t), LargeSize) })
	t.Run("DigestMismatch", func(t *testing.T) { testDigestMismatch(t, newTier(t)) })
	t.Run("SizeMismatch", func(t *testing.T) { testSizeMismatch(t, newTier(t)) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, newTier(t)) })
	t.Run("ContextCancelled", func(t *testing.T) { testContextCancelled(t, newTier(t)) })
	t.Run("ClosedWriter", func(t *testing.T) { testClosedWriter(t, newTier(t)) })
	t.Run("ListAndDelete", func(t *testing.T) { testListDelete(t, newTier(t)) })
}

// Blob returns n bytes that depend on seed, and their digest.
func Blob(t testing.TB, n int, seed uint64) ([]byte, v1.Hash) {
	t.Helper()
	b := make([]byte, n)
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(n))
	rand.NewChaCha8(key).Read(b)
	h, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

// writeChunks writes b in chunks of uneven sizes, as a network body arrives.
func writeChunks(w io.Writer, b []byte) error {
	sizes := []int{1, 4093, 65536, 1<<20 + 7, 300}
	for i := 0; len(b) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(b))
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// put writes and commits b as h, returning Create's or Commit's error.
func put(ctx context.Context, tier blobs.Tier, h v1.Hash, b []byte) error {
	w, err := tier.Create(ctx, h, int64(len(b)))
	if err != nil {
		return err
	}
	defer w.Cancel()
	if err := writeChunks(w, b); err != nil {
		return err
	}
	return w.Commit()
}

// mustPut commits b as h.
func mustPut(t *testing.T, tier blobs.Tier, h v1.Hash, b []byte) {
	t.Helper()
	if err := put(t.Context(), tier, h, b); err != nil {
		t.Fatalf("put %s: %v", h, err)
	}
}

// read returns the bytes of h from offset and the size Open reported.
func read(t *testing.T, tier blobs.Tier, h v1.Hash, offset int64) ([]byte, int64) {
	t.Helper()
	rc, size, err := tier.Open(t.Context(), h, offset)
	if err != nil {
		t.Fatalf("open %s at %d: %v", h, offset, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s at %d: %v", h, offset, err)
	}
	return b, size
}

// absent fails unless Stat and Open report ErrNotFound for h.
func absent(t *testing.T, tier blobs.Tier, h v1.Hash) {
	t.Helper()
	if _, err := tier.Stat(t.Context(), h); !errors.Is(err, blobs.ErrNotFound) {
		t.Errorf("stat %s: %v, want ErrNotFound", h, err)
	}
	rc, _, err := tier.Open(t.Context(), h, 0)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, blobs.ErrNotFound) {
		t.Errorf("open %s: %v, want ErrNotFound", h, err)
	}
}

func testRoundTrip(t *testing.T, tier blobs.Tier) {
	for i, n := range []int{0, 1, 100 << 10, LargeSize} {
		b, h := Blob(t, n, uint64(i))
		mustPut(t, tier, h, b)
		info, err := tier.Stat(t.Context(), h)
		if err != nil {
			t.Fatalf("stat %d bytes: %v", n, err)
		}
		if info.Size != int64(n) {
			t.Errorf("stat size %d, want %d", info.Size, n)
		}
		if info.Digest != h {
			t.Errorf("stat digest %s, want %s", info.Digest, h)
		}
		if info.Modified.IsZero() {
			t.Errorf("stat of %d bytes has no modification time", n)
		}
		got, size := read(t, tier, h, 0)
		if size != int64(n) {
			t.Errorf("open size %d, want %d", size, n)
		}
		if !bytes.Equal(got, b) {
			t.Errorf("read back %d bytes differ from the %d written", len(got), n)
		}
	}
}

func testRanges(t *testing.T, tier blobs.Tier) {
	b, h := Blob(t, LargeSize, 1)
	mustPut(t, tier, h, b)
	for _, off := range []int64{0, 1, 5<<20 - 1, 5 << 20, LargeSize - 1, LargeSize} {
		got, size := read(t, tier, h, off)
		if size != LargeSize {
			t.Errorf("offset %d: size %d, want %d", off, size, LargeSize)
		}
		if !bytes.Equal(got, b[off:]) {
			t.Errorf("offset %d: %d bytes read differ from the %d expected", off, len(got), LargeSize-off)
		}
	}
	for _, off := range []int64{-1, LargeSize + 1} {
		rc, _, err := tier.Open(t.Context(), h, off)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, blobs.ErrOutOfRange) {
			t.Errorf("offset %d: %v, want ErrOutOfRange", off, err)
		}
	}
	// A reader closed early releases what it holds and spoils nothing.
	rc, _, err := tier.Open(t.Context(), h, 7)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 100)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("closing a reader early: %v", err)
	}
	if !bytes.Equal(head, b[7:107]) {
		t.Error("the first 100 bytes from offset 7 differ")
	}
}

func testNotFound(t *testing.T, tier blobs.Tier) {
	_, h := Blob(t, 10, 2)
	absent(t, tier, h)
	if err := tier.Delete(t.Context(), h); err != nil {
		t.Errorf("deleting an absent blob: %v", err)
	}
}

func testExists(t *testing.T, tier blobs.Tier) {
	b, h := Blob(t, 1000, 3)
	mustPut(t, tier, h, b)
	if err := put(t.Context(), tier, h, b); !errors.Is(err, blobs.ErrExists) {
		t.Errorf("second commit: %v, want ErrExists", err)
	}
	if got, _ := read(t, tier, h, 0); !bytes.Equal(got, b) {
		t.Error("content changed by the second commit")
	}
}

// testConcurrentWriters has writers of one digest all open and written
// before any commits, then commit at once: exactly one wins, the others see
// ErrExists, and the content is right.
func testConcurrentWriters(t *testing.T, tier blobs.Tier, n int) {
	const writers = 4
	b, h := Blob(t, n, 4)
	ws := make([]blobs.Writer, writers)
	for i := range ws {
		w, err := tier.Create(t.Context(), h, int64(n))
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		defer w.Cancel()
		ws[i] = w
	}
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i, w := range ws {
		wg.Go(func() {
			if errs[i] = writeChunks(w, b); errs[i] == nil {
				errs[i] = w.Commit()
			}
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, blobs.ErrExists):
			t.Errorf("writer %d: %v, want success or ErrExists", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d writers committed, want exactly 1", won)
	}
	if got, _ := read(t, tier, h, 0); !bytes.Equal(got, b) {
		t.Error("committed content differs")
	}
}

func testDigestMismatch(t *testing.T, tier blobs.Tier) {
	for _, n := range []int{1000, LargeSize} {
		b, h := Blob(t, n, 5)
		wrong := bytes.Clone(b)
		wrong[n/2] ^= 1
		if err := put(t.Context(), tier, h, wrong); !errors.Is(err, blobs.ErrDigestMismatch) {
			t.Errorf("%d bytes: commit of wrong bytes: %v, want ErrDigestMismatch", n, err)
		}
		absent(t, tier, h)
	}
}

func testSizeMismatch(t *testing.T, tier blobs.Tier) {
	b, h := Blob(t, LargeSize, 6)
	for _, c := range []struct {
		name  string
		size  int64
		bytes []byte
	}{
		{"short write", LargeSize, b[:LargeSize-1]},
		{"long write", LargeSize - 1, b},
	} {
		w, err := tier.Create(t.Context(), h, c.size)
		if err != nil {
			t.Fatal(err)
		}
		err = writeChunks(w, c.bytes)
		if err == nil {
			err = w.Commit()
		}
		if !errors.Is(err, blobs.ErrSizeMismatch) {
			t.Errorf("%s: %v, want ErrSizeMismatch", c.name, err)
		}
		// A writer told of too many bytes does not commit the ones it kept.
		if err := w.Commit(); err == nil {
			t.Errorf("%s: commit after the failed write succeeded", c.name)
		}
		w.Cancel()
		absent(t, tier, h)
	}
}

// testCancel cancels writers part way and after every byte: nothing is
// visible before Commit, nor after Cancel.
func testCancel(t *testing.T, tier blobs.Tier) {
	b, h := Blob(t, LargeSize, 7)
	for _, n := range []int{LargeSize / 2, LargeSize} {
		w, err := tier.Create(t.Context(), h, LargeSize)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeChunks(w, b[:n]); err != nil {
			t.Fatal(err)
		}
		absent(t, tier, h)
		if err := w.Cancel(); err != nil {
			t.Errorf("cancel after %d bytes: %v", n, err)
		}
		absent(t, tier, h)
		if err := w.Cancel(); err != nil {
			t.Errorf("second cancel: %v", err)
		}
		if err := w.Commit(); !errors.Is(err, blobs.ErrClosed) {
			t.Errorf("commit after cancel: %v, want ErrClosed", err)
		}
		absent(t, tier, h)
	}
	// A cancelled write leaves nothing that stops a later one.
	mustPut(t, tier, h, b)
}

func testContextCancelled(t *testing.T, tier blobs.Tier) {
	b, h := Blob(t, LargeSize, 8)
	ctx, cancel := context.WithCancel(t.Context())
	w, err := tier.Create(ctx, h, LargeSize)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel()
	if err := writeChunks(w, b[:LargeSize/2]); err != nil {
		t.Fatal(err)
	}
	cancel()
	err = writeChunks(w, b[LargeSize/2:])
	if err == nil {
		err = w.Commit()
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("write or commit after the context ended: %v, want context.Canceled", err)
	}
	absent(t, tier, h)
}

func testClosedWriter(t *testing.T, tier blobs.Tier) {
	b, h := Blob(t, 100, 9)
	w, err := tier.Create(t.Context(), h, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); !errors.Is(err, blobs.ErrClosed) {
		t.Errorf("write after commit: %v, want ErrClosed", err)
	}
	if err := w.Commit(); !errors.Is(err, blobs.ErrClosed) {
		t.Errorf("second commit: %v, want ErrClosed", err)
	}
	if err := w.Cancel(); err != nil {
		t.Errorf("cancel after commit: %v", err)
	}
	if got, _ := read(t, tier, h, 0); !bytes.Equal(got, b) {
		t.Error("cancel after commit changed the blob")
	}
}

// listed collects a listing as digest → size.
func listed(t *testing.T, tier blobs.Tier) map[v1.Hash]int64 {
	t.Helper()
	got := map[v1.Hash]int64{}
	for info, err := range tier.List(t.Context()) {
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if _, dup := got[info.Digest]; dup {
			t.Errorf("list yields %s twice", info.Digest)
		}
		got[info.Digest] = info.Size
	}
	return got
}

func testListDelete(t *testing.T, tier blobs.Tier) {
	if got := listed(t, tier); len(got) != 0 {
		t.Fatalf("a new tier lists %d blobs", len(got))
	}
	want := map[v1.Hash]int64{}
	var first v1.Hash
	for i := range 3 {
		b, h := Blob(t, 100+i, uint64(10+i))
		mustPut(t, tier, h, b)
		want[h] = int64(len(b))
		first = h
	}
	// A write in progress is not listed.
	pending, ph := Blob(t, 50, 20)
	w, err := tier.Create(t.Context(), ph, 50)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel()
	if _, err := w.Write(pending); err != nil {
		t.Fatal(err)
	}
	assertListed(t, tier, want)
	for range tier.List(t.Context()) {
		break // stopping early must not panic or leak
	}
	if err := tier.Delete(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	delete(want, first)
	absent(t, tier, first)
	assertListed(t, tier, want)
}

func assertListed(t *testing.T, tier blobs.Tier, want map[v1.Hash]int64) {
	t.Helper()
	got := listed(t, tier)
	if len(got) != len(want) {
		t.Errorf("list has %d blobs, want %d", len(got), len(want))
	}
	for h, size := range want {
		if got[h] != size {
			t.Errorf("list: %s has size %d, want %d", h, got[h], size)
		}
	}
}
