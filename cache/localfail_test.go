package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pullcache/pullcache/test/tmpfs"
)

// lockedBuffer is a log sink safe for the fill goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAFullDiskDuringAFillIsLocal: a fill that runs out of space on a real
// (tmpfs) filesystem fails as the mirror's own: a DiskError naming the file
// and the space free, counted as local, logged with both, and not
// remembered against the source: once space is back, the next fill runs.
func TestAFullDiskDuringAFillIsLocal(t *testing.T) {
	mnt := mountTmpfs(t, 48<<20)
	var logs lockedBuffer
	reg := prometheus.NewRegistry()
	s, err := Open(Options{Dir: filepath.Join(mnt, "data"), Housekeeping: -1, FillRetryBackoff: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	<-s.use.scanned
	filler := filepath.Join(mnt, "filler")
	blob := randomBytes(t, 4<<20)
	d := digestOf(blob)
	// Another process fills the disk after the fill made its reservation
	// and wrote its first bytes: the rest cannot be written.
	var fillErr error // the fill's goroutine fills the disk; checked once it ended
	src := func(context.Context, int64) (io.ReadCloser, int64, error) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(blob[:1<<20]), &onRead{fn: func() { fillErr = tmpfs.Fill(filler) }},
			bytes.NewReader(blob[1<<20:]))), int64(len(blob)), nil
	}
	fill := func() (*Fill, bool, error) {
		f, started, err := s.StartFill(d, int64(len(blob)), "docker.io/library/app", src)
		if err != nil {
			return nil, false, err
		}
		<-f.Done()
		return f, started, f.Err()
	}
	_, _, err = fill()
	if fillErr != nil {
		t.Fatal(fillErr)
	}
	var de *DiskError
	if !errors.As(err, &de) {
		t.Fatalf("fill on a full disk: %v, want a *DiskError", err)
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Errorf("fill on a full disk: %v, want ErrNoSpace", err)
	}
	if !strings.HasPrefix(de.Path, filepath.Join(mnt, "data", "tmp")) {
		t.Errorf("the error names %q, want a file under the data directory's tmp/", de.Path)
	}
	if de.Free < 0 || de.Free > 1<<20 {
		t.Errorf("free space reported: %d bytes, want what the full tmpfs has left", de.Free)
	}
	if got := counterValue(t, s.metrics.fillFailures.WithLabelValues("local")); got != 1 {
		t.Errorf("local fill failures counted: %v, want 1", got)
	}
	if got := counterValue(t, s.metrics.fillFailures.WithLabelValues("source")); got != 0 {
		t.Errorf("source fill failures counted: %v, want 0", got)
	}
	line := logLine(logs.String(), "fill failed")
	for _, want := range []string{"path=" + de.Path, fmt.Sprintf("free_bytes=%d", de.Free), "cause=local"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	src = func(context.Context, int64) (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(blob)), int64(len(blob)), nil
	}
	f, started, err := fill()
	if err != nil {
		t.Fatalf("first fill after space returned: %v", err)
	}
	if !started {
		t.Error("the first request after space returned did not fetch: the local failure was remembered")
	}
	if f.Written() != int64(len(blob)) || !s.HasBlob(d) {
		t.Errorf("blob not committed after space returned (%d bytes written)", f.Written())
	}
}

// onRead runs fn at its first read, once, and then reads as empty.
type onRead struct {
	fn   func()
	done bool
}

func (r *onRead) Read([]byte) (int, error) {
	if !r.done {
		r.done = true
		r.fn()
	}
	return 0, io.EOF
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// logLine is the first line of logs with msg in it.
func logLine(logs, msg string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, msg) {
			return l
		}
	}
	return ""
}

// passingErr is a source failure that says whether its cause has passed.
type passingErr struct{ over *bool }

func (e passingErr) Error() string { return "connection refused" }
func (e passingErr) Over() bool    { return *e.over }

// TestFailuresFollowTheirCause: a remembered source failure that says its
// cause has passed (the upstream answers again) is forgotten before its
// backoff ends; bytes that did not match keep their backoff whatever the
// error says; local failures are not remembered at all.
func TestFailuresFollowTheirCause(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	d := digestOf([]byte("x"))
	tests := []struct {
		name        string
		err         func(over *bool) error
		heldBefore  bool // held back while the cause lasts
		heldOverNow bool // held back once it says it is over
	}{
		{"upstream unreachable", func(o *bool) error { return fmt.Errorf("fill: %w", passingErr{o}) }, true, false},
		{"digest mismatch", func(o *bool) error { return errors.Join(ErrDigestMismatch, passingErr{o}) }, true, true},
		{"size mismatch", func(o *bool) error { return fmt.Errorf("%w: %w", ErrSizeMismatch, passingErr{o}) }, true, true},
		{"plain failure", func(*bool) error { return errors.New("reset") }, true, true},
		{"disk full", func(*bool) error { return diskError("write", "/nonexistent/tmp/x", errors.New("no space")) }, false, false},
		{"out of the bound", func(*bool) error { return fmt.Errorf("%w: nothing to evict", ErrNoSpace) }, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFailures(time.Minute)
			over := false
			fs.note(d, "r", tc.err(&over), now)
			if _, held := fs.recent(d, "r", now.Add(time.Second)); held != tc.heldBefore {
				t.Errorf("held back while the cause lasts: %v, want %v", held, tc.heldBefore)
			}
			over = true
			if _, held := fs.recent(d, "r", now.Add(2*time.Second)); held != tc.heldOverNow {
				t.Errorf("held back once the cause has passed: %v, want %v", held, tc.heldOverNow)
			}
		})
	}
}
