package cache

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func putTestBlob(t *testing.T, s *Store, b []byte) v1.Hash {
	t.Helper()
	h := digestOf(b)
	if err := s.PutBlob(h, int64(len(b)), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return h
}

func lend(t *testing.T, s *Store, h v1.Hash) *BlobFile {
	t.Helper()
	b, err := s.lendBlob(h)
	if err != nil {
		t.Fatalf("LendBlob: %v", err)
	}
	return b
}

// isClosed reports whether f was closed.
func isClosed(f *os.File) bool {
	_, err := f.Stat()
	return errors.Is(err, os.ErrClosed)
}

func TestLendBlobReusesADescriptorFromTheStart(t *testing.T) {
	s := openStore(t, t.TempDir())
	blob := []byte("0123456789abcdef")
	h := putTestBlob(t, s, blob)

	first := lend(t, s, h)
	if first.Size() != int64(len(blob)) {
		t.Errorf("Size = %d, want %d", first.Size(), len(blob))
	}
	f := first.f
	if _, err := io.ReadFull(first, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	first.Close()

	again := lend(t, s, h)
	defer again.Close()
	if again.f != f {
		t.Error("a second request opened the blob again instead of reusing the idle descriptor")
	}
	if got, _ := io.ReadAll(again); !bytes.Equal(got, blob) {
		t.Errorf("reused descriptor read %q, want the blob from its first byte", got)
	}
	if n, err := again.Seek(0, io.SeekEnd); err != nil || n != int64(len(blob)) {
		t.Errorf("Seek(0, SeekEnd) = %d, %v", n, err)
	}
}

func TestConcurrentRequestsNeverShareADescriptor(t *testing.T) {
	s := openStore(t, t.TempDir())
	h := putTestBlob(t, s, []byte("shared"))
	a, b := lend(t, s, h), lend(t, s, h)
	defer a.Close()
	defer b.Close()
	if a.f == b.f {
		t.Fatal("two requests in flight were lent the same descriptor (sendfile moves its file position)")
	}
}

func TestRemoveBlobClosesItsDescriptors(t *testing.T) {
	s := openStore(t, t.TempDir())
	blob := []byte("to be removed")
	h := putTestBlob(t, s, blob)
	inFlight, idle := lend(t, s, h), lend(t, s, h)
	idleFile, inFlightFile := idle.f, inFlight.f
	idle.Close()

	if err := s.removeBlob(h); err != nil {
		t.Fatal(err)
	}
	if !isClosed(idleFile) {
		t.Error("an idle descriptor of a removed blob is still open (it keeps the file's disk space)")
	}
	// A request already sending the blob finishes: the inode lives until
	// its descriptor closes.
	if got, _ := io.ReadAll(inFlight); !bytes.Equal(got, blob) {
		t.Errorf("request in flight read %q", got)
	}
	inFlight.Close()
	if !isClosed(inFlightFile) {
		t.Error("the descriptor of a removed blob went back to the pool")
	}
	if _, err := s.lendBlob(h); !errors.Is(err, ErrNotFound) {
		t.Errorf("LendBlob after removal: %v, want ErrNotFound", err)
	}
	if err := s.removeBlob(h); !errors.Is(err, ErrNotFound) {
		t.Errorf("second removeBlob: %v, want ErrNotFound", err)
	}
}

func TestOpenBlobsIsBounded(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), OpenBlobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var files []*os.File
	for _, b := range []string{"one", "two", "three"} {
		bf := lend(t, s, putTestBlob(t, s, []byte(b)))
		files = append(files, bf.f)
		bf.Close()
	}
	if !isClosed(files[0]) {
		t.Error("the least recently used blob's descriptor stayed open past the bound")
	}
	for _, f := range files[1:] {
		if isClosed(f) {
			t.Error("a descriptor within the bound was closed")
		}
	}
	s.Close()
	for _, f := range files[1:] {
		if !isClosed(f) {
			t.Error("Close left a blob descriptor open")
		}
	}
}

func TestIdleDescriptorsPerBlobAreBounded(t *testing.T) {
	s := openStore(t, t.TempDir())
	h := putTestBlob(t, s, []byte("popular"))
	var lent []*BlobFile
	var files []*os.File
	for range idlePerBlob + 2 {
		b := lend(t, s, h)
		lent, files = append(lent, b), append(files, b.f)
	}
	for _, b := range lent {
		b.Close()
	}
	closed := 0
	for _, f := range files {
		if isClosed(f) {
			closed++
		}
	}
	if closed != 2 {
		t.Errorf("%d of %d descriptors closed on return, want 2 (idlePerBlob = %d kept)", closed, len(files), idlePerBlob)
	}
}

// TestAFillFoundCommittedAndThenRemovedIsNotFound: StartFill finds a
// committed blob and opens it only for its first reader; a removal in
// between makes that reader's open ErrNotFound (a miss), not another error.
func TestAFillFoundCommittedAndThenRemovedIsNotFound(t *testing.T) {
	s := openStore(t, t.TempDir())
	h := putTestBlob(t, s, []byte("evicted before it was read"))
	f, started, err := s.StartFill(h, -1, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if started {
		t.Fatal("StartFill started a fill of a committed blob")
	}
	if err := s.removeBlob(h); err != nil {
		t.Fatal(err)
	}
	if _, err := f.NewReader(t.Context()); !errors.Is(err, ErrNotFound) {
		t.Errorf("NewReader after removal: %v, want ErrNotFound", err)
	}
}
