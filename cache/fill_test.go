package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, StallTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func digestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// pipeSource is a Source whose bytes the test writes by hand.
type pipeSource struct {
	opened chan struct{}
	w      *io.PipeWriter
	r      *io.PipeReader
	size   int64
	calls  int
	mu     sync.Mutex
}

func newPipeSource(size int64) *pipeSource {
	r, w := io.Pipe()
	return &pipeSource{opened: make(chan struct{}), r: r, w: w, size: size}
}

func (p *pipeSource) open(ctx context.Context, _ int64) (io.ReadCloser, int64, error) {
	p.mu.Lock()
	p.calls++
	calls := p.calls
	p.mu.Unlock()
	if calls > 1 {
		return nil, 0, errors.New("the source cannot resume")
	}
	close(p.opened)
	context.AfterFunc(ctx, func() { p.r.CloseWithError(ctx.Err()) })
	return p.r, p.size, nil
}

func readN(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func TestFillReadersFollowAndLastByteWaitsForVerification(t *testing.T) {
	s := openStore(t, t.TempDir())
	blob := bytes.Repeat([]byte("0123456789"), 1000)
	d := digestOf(blob)
	src := newPipeSource(int64(len(blob)))

	f, started, err := s.StartFill(d, int64(len(blob)), "r", src.open)
	if err != nil || !started {
		t.Fatalf("StartFill: started=%v err=%v", started, err)
	}
	joined, again, err := s.StartFill(d, -1, "other", src.open)
	if err != nil || again || joined != f {
		t.Fatalf("second StartFill did not join: started=%v same=%v err=%v", again, joined == f, err)
	}
	<-src.opened
	rd, err := f.NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	// Write all but nothing more: the reader sees everything but the last
	// byte, which waits for the end of the stream and the digest check.
	if _, err := src.w.Write(blob); err != nil {
		t.Fatal(err)
	}
	got := readN(t, rd, len(blob)-1)
	if !bytes.Equal(got, blob[:len(blob)-1]) {
		t.Fatal("bytes differ")
	}
	if s.HasBlob(d) {
		t.Fatal("committed before the stream ended")
	}
	src.w.Close()
	rest, err := io.ReadAll(rd)
	if err != nil || !bytes.Equal(rest, blob[len(blob)-1:]) {
		t.Fatalf("last byte: %q, %v", rest, err)
	}
	<-f.Done()
	if !s.HasBlob(d) {
		t.Fatal("not committed")
	}
	if src.calls != 1 {
		t.Errorf("source opened %d times", src.calls)
	}
	if n, err := s.blobSize(d); err != nil || n != int64(len(blob)) {
		t.Errorf("BlobSize = %d, %v", n, err)
	}
}

func TestFillFailuresCommitNothing(t *testing.T) {
	blob := bytes.Repeat([]byte("x"), 4096)
	tests := []struct {
		name    string
		size    int64
		write   []byte
		cut     error
		wantErr error
	}{
		{"wrong bytes", int64(len(blob)), bytes.Repeat([]byte("y"), 4096), nil, ErrDigestMismatch},
		{"short", int64(len(blob)), blob[:100], nil, ErrSizeMismatch},
		{"too long", int64(len(blob)), append(append([]byte{}, blob...), 'z'), nil, ErrSizeMismatch},
		{"cut mid-body", int64(len(blob)), blob[:2000], errors.New("connection reset"), nil},
		{"unknown size, wrong bytes", -1, blob[:4000], nil, ErrDigestMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			d := digestOf(blob)
			src := newPipeSource(tc.size)
			f, _, err := s.StartFill(d, tc.size, "r", src.open)
			if err != nil {
				t.Fatal(err)
			}
			<-src.opened
			rd, err := f.NewReader(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			go func() {
				src.w.Write(tc.write)
				src.w.CloseWithError(tc.cut)
			}()
			_, err = io.ReadAll(rd)
			if err == nil {
				t.Fatal("reader saw a complete blob")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			<-f.Done()
			if s.HasBlob(d) {
				t.Error("a failed fill was committed")
			}
			if entries, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(entries) != 0 {
				t.Errorf("temp files left: %d", len(entries))
			}
			// Within the backoff the next request from the same origin
			// shares the failure; another origin starts a fill of its own.
			again, started, err := s.StartFill(d, tc.size, "r", newPipeSource(tc.size).open)
			var rf *RecentFailure
			if err != nil || started || !errors.As(again.Err(), &rf) {
				t.Errorf("right after a failure: started=%v err=%v fill err=%v, want the failure shared", started, err, again.Err())
			}
			if _, started, err := s.StartFill(d, tc.size, "other", newPipeSource(tc.size).open); err != nil || !started {
				t.Errorf("another origin after a failure: started=%v err=%v", started, err)
			}
		})
	}
}

func TestFillOutlivesItsReaders(t *testing.T) {
	s := openStore(t, t.TempDir())
	blob := bytes.Repeat([]byte("ab"), 50_000)
	d := digestOf(blob)
	src := newPipeSource(int64(len(blob)))
	f, _, _ := s.StartFill(d, int64(len(blob)), "r", src.open)
	<-src.opened
	ctx, cancel := context.WithCancel(context.Background())
	rd, err := f.NewReader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src.w.Write(blob[:1000])
	readN(t, rd, 999)
	cancel() // the client hangs up
	if _, err := rd.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("reader after cancel: %v", err)
	}
	rd.Close()
	src.w.Write(blob[1000:])
	src.w.Close()
	<-f.Done()
	if f.Err() != nil || !s.HasBlob(d) {
		t.Fatalf("fill did not complete after its reader left: %v", f.Err())
	}
	// A reader arriving after every reference was dropped reopens the file.
	late, err := f.NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if got, _ := io.ReadAll(late); !bytes.Equal(got, blob) {
		t.Error("late reader got other bytes")
	}
}

func TestFillStalls(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), StallTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	blob := []byte("never arrives")
	src := newPipeSource(int64(len(blob)))
	f, _, _ := s.StartFill(digestOf(blob), int64(len(blob)), "r", src.open)
	<-f.Done()
	if !errors.Is(f.Err(), ErrStalled) {
		t.Fatalf("err = %v, want ErrStalled", f.Err())
	}
}

func TestFillSeekAndRangeWhileGrowing(t *testing.T) {
	s := openStore(t, t.TempDir())
	blob := bytes.Repeat([]byte("0123456789"), 100)
	src := newPipeSource(int64(len(blob)))
	f, _, _ := s.StartFill(digestOf(blob), int64(len(blob)), "r", src.open)
	<-f.Ready() // the size is known from here on
	rd, _ := f.NewReader(context.Background())
	defer rd.Close()
	if n, err := rd.Seek(0, io.SeekEnd); err != nil || n != int64(len(blob)) {
		t.Fatalf("SeekEnd = %d, %v", n, err)
	}
	rd.Seek(500, io.SeekStart)
	done := make(chan []byte)
	go func() {
		b := make([]byte, 10)
		io.ReadFull(rd, b)
		done <- b
	}()
	src.w.Write(blob[:600]) // the range is there once these bytes land
	if got := <-done; !bytes.Equal(got, blob[500:510]) {
		t.Errorf("range = %q", got)
	}
	src.w.Write(blob[600:])
	src.w.Close()
	<-f.Done()
}

func TestStartFillOnCommittedBlob(t *testing.T) {
	s := openStore(t, t.TempDir())
	blob := []byte("small")
	d := digestOf(blob)
	src := newPipeSource(5)
	f, _, _ := s.StartFill(d, 5, "r", src.open)
	<-src.opened
	src.w.Write(blob)
	src.w.Close()
	<-f.Done()
	g, started, err := s.StartFill(d, 5, "r", func(context.Context, int64) (io.ReadCloser, int64, error) {
		t.Error("a committed blob was fetched again")
		return nil, 0, errors.New("unexpected")
	})
	if err != nil || started {
		t.Fatalf("started=%v err=%v", started, err)
	}
	rd, err := g.NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if got, _ := io.ReadAll(rd); !bytes.Equal(got, blob) {
		t.Errorf("got %q", got)
	}
}

func TestCloseCancelsRunningFills(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	src := newPipeSource(100)
	f, _, _ := s.StartFill(digestOf([]byte("x")), 100, "r", src.open)
	<-src.opened
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	<-f.Done()
	if f.Err() == nil {
		t.Error("a fill cut by Close reported success")
	}
}

// brokenOnce serves a blob that breaks off after cut bytes on the first
// opening; later openings serve from the offset asked for.
type brokenOnce struct {
	blob    []byte
	cut     int
	offsets []int64
}

func (b *brokenOnce) open(_ context.Context, offset int64) (io.ReadCloser, int64, error) {
	b.offsets = append(b.offsets, offset)
	if len(b.offsets) == 1 {
		r := io.MultiReader(bytes.NewReader(b.blob[:b.cut]), errReader{errors.New("connection reset by peer")})
		return io.NopCloser(r), int64(len(b.blob)), nil
	}
	return io.NopCloser(bytes.NewReader(b.blob[offset:])), int64(len(b.blob)), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestFillResumesWhereTheSourceBrokeOff(t *testing.T) {
	s := openStore(t, t.TempDir())
	blob := bytes.Repeat([]byte("abcdefgh"), 10_000)
	src := &brokenOnce{blob: blob, cut: 30_000}
	f, _, err := s.StartFill(digestOf(blob), int64(len(blob)), "r", src.open)
	if err != nil {
		t.Fatal(err)
	}
	<-f.Done()
	if f.Err() != nil {
		t.Fatalf("resumed fill failed: %v", f.Err())
	}
	if len(src.offsets) != 2 || src.offsets[1] != 30_000 {
		t.Errorf("openings at offsets %v, want [0 30000]", src.offsets)
	}
	rd, _ := f.NewReader(context.Background())
	defer rd.Close()
	if got, _ := io.ReadAll(rd); !bytes.Equal(got, blob) {
		t.Error("resumed blob differs")
	}
}

func TestWriteToFollowsTheFill(t *testing.T) {
	s := openStore(t, t.TempDir())
	blob := bytes.Repeat([]byte("0123456789abcdef"), 40_000)
	src := newPipeSource(int64(len(blob)))
	f, _, _ := s.StartFill(digestOf(blob), int64(len(blob)), "r", src.open)
	<-f.Ready()
	rd, err := f.NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out bytes.Buffer
	done := make(chan error)
	go func() {
		_, err := rd.WriteTo(&out)
		done <- err
	}()
	for i := 0; i < len(blob); i += 100_000 {
		src.w.Write(blob[i:min(i+100_000, len(blob))])
	}
	src.w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), blob) {
		t.Errorf("WriteTo wrote %d bytes, not the blob", out.Len())
	}
}

// TestWaitFillReturnsOnceTheFillCommitted: WaitFill waits while a fill
// runs; once it returned, the blob is committed and recorded.
func TestWaitFillReturnsOnceTheFillCommitted(t *testing.T) {
	s := openStore(t, t.TempDir())
	blob := bytes.Repeat([]byte("committed"), 1000)
	d := digestOf(blob)
	src := newPipeSource(int64(len(blob)))
	if _, _, err := s.StartFill(d, int64(len(blob)), "r", src.open); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- s.WaitFill(context.Background(), d) }()
	<-src.opened
	select {
	case err := <-waited:
		t.Fatalf("WaitFill returned (%v) while the fill was still reading its source", err)
	default:
	}
	if _, err := src.w.Write(blob); err != nil {
		t.Fatal(err)
	}
	src.w.Close()
	if err := <-waited; err != nil {
		t.Fatalf("WaitFill: %v", err)
	}
	if !s.HasBlob(d) {
		t.Error("the blob is not committed after WaitFill")
	}
	if n, err := s.blobSize(d); n != int64(len(blob)) {
		t.Errorf("recorded size %d (%v), want %d", n, err, len(blob))
	}
	if err := s.WaitFill(context.Background(), d); err != nil {
		t.Errorf("WaitFill with no fill in flight: %v", err)
	}
}
