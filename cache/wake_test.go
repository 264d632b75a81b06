package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// wakeFixture is a fill driven by hand inside a synctest bubble: the test
// writes bytes into the fill's file and calls advance, verify or finish as
// copyFill and runFill would, while a follower reads in the background.
type wakeFixture struct {
	t    *testing.T
	f    *Fill
	blob []byte
	n    int64        // bytes written so far
	got  atomic.Int64 // bytes the follower has read
	err  chan error   // the follower's end
}

func newWakeFixture(t *testing.T, size int) *wakeFixture {
	t.Helper()
	blob := make([]byte, size)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	file, err := os.Create(filepath.Join(t.TempDir(), "fill"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFill(digestOf(blob), "r", file.Name())
	f.file, f.refs = file, 1
	f.size = int64(size)
	close(f.ready)
	w := &wakeFixture{t: t, f: f, blob: blob, err: make(chan error, 1)}
	rd, err := f.NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer rd.Close()
		buf := make([]byte, size)
		for {
			k, err := rd.Read(buf)
			if k > 0 {
				if !bytes.Equal(buf[:k], blob[w.got.Load():w.got.Load()+int64(k)]) {
					w.err <- errors.New("follower read other bytes")
					return
				}
				w.got.Add(int64(k))
			}
			if err != nil {
				w.err <- err
				return
			}
		}
	}()
	t.Cleanup(func() { f.release() })
	return w
}

// arrive writes the next k bytes of the blob and advances the fill.
func (w *wakeFixture) arrive(k int) {
	w.t.Helper()
	if _, err := w.f.file.WriteAt(w.blob[w.n:w.n+int64(k)], w.n); err != nil {
		w.t.Fatal(err)
	}
	w.n += int64(k)
	w.f.advance(w.n)
}

// startedWakeFixture is a fixture whose follower has had its first bytes.
func startedWakeFixture(t *testing.T, size int) *wakeFixture {
	w := newWakeFixture(t, size)
	w.arrive(100)
	w.seen()
	return w
}

// stop fails the fill and waits for the follower to end.
func (w *wakeFixture) stop() {
	w.f.finish(errors.New("end of test"))
	<-w.err
}

// seen waits until the follower is blocked again and returns what it has.
func (w *wakeFixture) seen() int64 {
	synctest.Wait()
	return w.got.Load()
}

func TestFirstBytesReachFollowersAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWakeFixture(t, 1<<20)
		start := time.Now()
		w.arrive(1) // held back: nothing to see yet
		if got := w.seen(); got != 0 {
			t.Fatalf("follower has %d bytes of a 1-byte start, want 0 (the last held back)", got)
		}
		w.arrive(99)
		if got := w.seen(); got != 99 {
			t.Fatalf("follower has %d bytes after the first 100 arrived, want 99 (the last held back)", got)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("the first bytes took %v of the fake clock", d)
		}
		w.stop()
	})
}

func TestSmallPiecesAreBatchedForAtMostWakeEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startedWakeFixture(t, 1<<20)
		start := time.Now()
		for range 10 {
			w.arrive(1000) // 10 000 bytes, far below wakeBytes
		}
		if got := w.seen(); got != 99 {
			t.Fatalf("follower woken for small pieces: has %d bytes", got)
		}
		time.Sleep(wakeEvery) // the fake clock: the pending wake-up fires
		if got := w.seen(); got != w.n-1 {
			t.Fatalf("after wakeEvery the follower has %d bytes, want %d", got, w.n-1)
		}
		if d := time.Since(start); d != wakeEvery {
			t.Errorf("batched bytes reached the follower after %v, want %v", d, wakeEvery)
		}
		w.stop()
	})
}

func TestWakeBytesWakeFollowersAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startedWakeFixture(t, 1<<20)
		w.arrive(wakeBytes)
		if got := w.seen(); got != w.n-1 {
			t.Fatalf("after wakeBytes more the follower has %d bytes, want %d", got, w.n-1)
		}
		w.stop()
	})
}

func TestVerifiedEndReachesFollowersAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startedWakeFixture(t, 5000)
		w.arrive(4900) // the rest, batched: no wake-up yet
		start := time.Now()
		w.f.verify()
		if got := w.seen(); got != 5000 {
			t.Fatalf("after verification the follower has %d bytes, want all 5000", got)
		}
		if err := <-w.err; err != io.EOF {
			t.Fatalf("follower ended with %v, want EOF", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("the verified end took %v of the fake clock", d)
		}
		w.f.finish(nil)
	})
}

func TestFailureReachesFollowersAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startedWakeFixture(t, 1<<20)
		w.arrive(10)
		cut := errors.New("connection reset")
		w.f.finish(cut)
		synctest.Wait()
		select {
		case err := <-w.err:
			if !errors.Is(err, cut) {
				t.Errorf("follower ended with %v, want the fill's error", err)
			}
		default:
			t.Fatal("a failed fill left its follower waiting")
		}
	})
}

// TestFollowersSeeEveryByteInOrder runs a herd of followers, half reading
// with Read and half with WriteTo, behind a source that sends pieces of
// every size from 1 byte to well above wakeBytes.
func TestFollowersSeeEveryByteInOrder(t *testing.T) {
	s := openStore(t, t.TempDir())
	blob := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	src := newPipeSource(int64(len(blob)))
	f, _, err := s.StartFill(digestOf(blob), int64(len(blob)), "r", src.open)
	if err != nil {
		t.Fatal(err)
	}
	<-src.opened
	const followers = 16
	var wg sync.WaitGroup
	errs := make(chan error, followers)
	for i := range followers {
		rd, err := f.NewReader(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer rd.Close()
			var out bytes.Buffer
			var err error
			if i%2 == 0 {
				_, err = rd.WriteTo(&out)
			} else {
				_, err = io.Copy(&out, struct{ io.Reader }{rd})
			}
			switch {
			case err != nil:
				errs <- err
			case !bytes.Equal(out.Bytes(), blob):
				errs <- errors.New("a follower got other bytes")
			}
		}()
	}
	for off := 0; off < len(blob); {
		k := min(len(blob)-off, 1+rng.IntN(3*wakeBytes/2))
		if rng.IntN(4) == 0 {
			k = min(len(blob)-off, 1+rng.IntN(64))
		}
		if _, err := src.w.Write(blob[off : off+k]); err != nil {
			t.Fatal(err)
		}
		off += k
	}
	src.w.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	<-f.Done()
	if f.Err() != nil {
		t.Fatal(f.Err())
	}
}

func TestReaderOfARecentlyFailedFillGetsTheFailure(t *testing.T) {
	cut := errors.New("upstream broke")
	f := failedFill(digestOf([]byte("x")), "r", cut)
	rd, err := f.NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if _, err := rd.Read(make([]byte, 1)); !errors.Is(err, cut) {
		t.Fatalf("Read of a failed fill: %v, want its failure", err)
	}
}
