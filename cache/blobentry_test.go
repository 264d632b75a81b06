package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// testSource is a BlobSource over bytes in memory; its hooks run where a
// request may race a commit (Refused: before a join) or an eviction
// (Confirm: after a join, before the reader opens).
type testSource struct {
	mu        sync.Mutex
	data      []byte
	opens     int
	refusals  int
	confirms  int
	onRefused func(n int)
	onConfirm func(n int) error
	block     chan struct{} // when set, Open waits for it (or ctx)
}

func (t *testSource) Open(ctx context.Context, _ int64) (io.ReadCloser, int64, error) {
	t.mu.Lock()
	t.opens++
	t.mu.Unlock()
	if t.block != nil {
		select {
		case <-t.block:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	return io.NopCloser(bytes.NewReader(t.data)), int64(len(t.data)), nil
}

func (t *testSource) Refused() error {
	t.mu.Lock()
	t.refusals++
	n := t.refusals
	t.mu.Unlock()
	if t.onRefused != nil {
		t.onRefused(n)
	}
	return nil
}

func (t *testSource) Confirm(context.Context) error {
	t.mu.Lock()
	t.confirms++
	n := t.confirms
	t.mu.Unlock()
	if t.onConfirm != nil {
		return t.onConfirm(n)
	}
	return nil
}

func readBlob(t *testing.T, s *Store, req BlobRequest) []byte {
	t.Helper()
	b, err := s.Blob(context.Background(), req)
	if err != nil {
		t.Fatalf("Blob: %v", err)
	}
	defer b.Close()
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestABlobEvictedBeforeItsReaderOpensIsAMiss: a request finds the blob
// committed (a fill finished between its lookup and its join), and an
// eviction pass deletes it before the reader opens the file. The request
// is a miss, as a cold one: the blob is fetched from the source and read
// whole, not failed.
func TestABlobEvictedBeforeItsReaderOpensIsAMiss(t *testing.T) {
	s, clock := policyStore(t, Options{OrphanGrace: time.Hour})
	want := randomBytes(t, 4096)
	d := digestOf(want)
	repo := Repo{Registry: "docker.io", Name: "library/app"}
	src := &testSource{data: want}
	src.onRefused = func(n int) {
		if n > 1 {
			return
		}
		// Another fill commits the blob before this request joins:
		// StartFill finds it committed.
		other := &testSource{data: want}
		f, _, err := s.StartFill(d, int64(len(want)), "elsewhere", other.Open)
		if err != nil {
			t.Error(err)
			return
		}
		<-f.Done()
	}
	src.onConfirm = func(n int) error {
		if n > 1 {
			return nil
		}
		// No manifest references the blob: past the grace period the
		// sweep deletes it.
		clock.set(epoch.Add(2 * time.Hour))
		rep, err := s.GC(false)
		if err != nil {
			t.Error(err)
		}
		if rep.Orphans != 1 {
			t.Errorf("the pass deleted %d orphans, want the blob", rep.Orphans)
		}
		return nil
	}
	got := readBlob(t, s, BlobRequest{Digest: d, Repo: repo, Source: src})
	if !bytes.Equal(got, want) {
		t.Errorf("read %d bytes, want the blob's %d", len(got), len(want))
	}
	if src.opens != 1 {
		t.Errorf("%d source opens, want 1 (the refetch)", src.opens)
	}
	if src.refusals != 2 {
		t.Errorf("%d joins, want 2 (the evicted blob, then its refetch)", src.refusals)
	}
}

// TestAStoredBlobIsServedOnlyToARepositoryItIsLinkedTo: the repository is
// the permission boundary; a refusal of the source is the answer.
func TestAStoredBlobIsServedOnlyToARepositoryItIsLinkedTo(t *testing.T) {
	s, _ := policyStore(t, Options{})
	want := randomBytes(t, 2048)
	d := putBlob(t, s, want).Digest
	repo := Repo{Registry: "docker.io", Name: "library/app"}
	refused := errors.New("not under this repository")
	src := &testSource{data: want, onConfirm: func(int) error { return refused }}
	if _, err := s.Blob(context.Background(), BlobRequest{Digest: d, Repo: repo, Source: src}); !errors.Is(err, refused) {
		t.Fatalf("unlinked blob: err %v, want the source's refusal", err)
	}
	src.onConfirm = nil
	if got := readBlob(t, s, BlobRequest{Digest: d, Repo: repo, Source: src}); !bytes.Equal(got, want) {
		t.Fatal("confirmed blob: wrong bytes")
	}
	if !s.Linked(repo, d) {
		t.Error("a confirmed blob is not linked to the repository")
	}
	b, err := s.Blob(context.Background(), BlobRequest{Digest: d, Repo: repo, Source: src, StoredOnly: true})
	if err != nil || !b.Stored() || !b.Cached() || b.Size() != int64(len(want)) {
		t.Fatalf("linked blob: %v (stored %v)", err, b != nil && b.Stored())
	}
	b.Close()
	if src.confirms != 2 || src.opens != 0 {
		t.Errorf("%d confirmations and %d opens, want 2 and 0", src.confirms, src.opens)
	}
}

// TestAColdBlobIsFilledOnceAndHeadAsksNoBytes: a cold request starts one
// fill; StoredOnly and SizeOnly requests start none.
func TestAColdBlobIsFilledOnceAndHeadAsksNoBytes(t *testing.T) {
	s, _ := policyStore(t, Options{})
	want := randomBytes(t, 8192)
	d := digestOf(want)
	repo := Repo{Registry: "docker.io", Name: "library/app"}
	src := &testSource{data: want}
	for _, req := range []BlobRequest{{StoredOnly: true}, {SizeOnly: true}} {
		req.Digest, req.Repo, req.Source = d, repo, src
		if _, err := s.Blob(context.Background(), req); !errors.Is(err, ErrNotFound) {
			t.Errorf("%+v of a cold blob: err %v, want ErrNotFound", req, err)
		}
	}
	b, err := s.Blob(context.Background(), BlobRequest{Digest: d, Repo: repo, Source: src, Ranged: true})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Started() || b.Stored() || b.Size() != int64(len(want)) {
		t.Errorf("cold request: started %v stored %v size %d", b.Started(), b.Stored(), b.Size())
	}
	if _, err := b.Seek(100, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(b)
	b.Close()
	if err != nil || !bytes.Equal(rest, want[100:]) {
		t.Fatalf("range of a fill: %d bytes, %v", len(rest), err)
	}
	if err := s.WaitFill(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if got := readBlob(t, s, BlobRequest{Digest: d, Repo: repo, Source: src}); !bytes.Equal(got, want) {
		t.Fatal("warm request: wrong bytes")
	}
	if src.opens != 1 || src.confirms != 0 {
		t.Errorf("%d opens and %d confirmations, want 1 and 0 (the fill linked it)", src.opens, src.confirms)
	}
}

// TestASilentSourceIsAWaitError: Wait bounds the wait for the source's
// answer; the fill goes on for the next request.
func TestASilentSourceIsAWaitError(t *testing.T) {
	s, _ := policyStore(t, Options{})
	want := randomBytes(t, 1024)
	d := digestOf(want)
	src := &testSource{data: want, block: make(chan struct{})}
	req := BlobRequest{Digest: d, Repo: Repo{Registry: "docker.io", Name: "library/app"}, Source: src, Wait: 20 * time.Millisecond}
	_, err := s.Blob(context.Background(), req)
	var we *WaitError
	if !errors.As(err, &we) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want a WaitError of the deadline", err)
	}
	close(src.block)
	req.Wait = 0
	if got := readBlob(t, s, req); !bytes.Equal(got, want) {
		t.Fatal("the fill that went on: wrong bytes")
	}
	if src.opens != 1 {
		t.Errorf("%d opens, want 1", src.opens)
	}
}
