package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/upstream"
)

func TestFillErrorsAreNever500(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	unavailable := &upstream.Error{Kind: upstream.Unavailable, Err: errors.New("503")}
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter int
	}{
		{"corrupt", fmt.Errorf("%w: got sha256:00", cache.ErrDigestMismatch), http.StatusBadGateway, CodeUnavailable, 0},
		{"short", fmt.Errorf("%w: got 1 of 2 bytes", cache.ErrSizeMismatch), http.StatusBadGateway, CodeUnavailable, 0},
		{"cut", fmt.Errorf("read source after 10 bytes: %w", io.ErrUnexpectedEOF), http.StatusServiceUnavailable, CodeUnavailable, 0},
		{"stalled", cache.ErrStalled, http.StatusServiceUnavailable, CodeUnavailable, 0},
		{"resume refused", errors.Join(io.ErrUnexpectedEOF, unavailable), http.StatusServiceUnavailable, CodeUnavailable, 0},
		{"not found", fmt.Errorf("%w: %w", cache.ErrSourceNotFound, &upstream.Error{Kind: upstream.NotFound, Err: errors.New("404")}), http.StatusNotFound, CodeBlobUnknown, 0},
		{"shared from the last fill", &cache.RecentFailure{Err: cache.ErrDigestMismatch, Until: now.Add(1500 * time.Millisecond)}, http.StatusBadGateway, CodeUnavailable, 2},
		{"disk full", fmt.Errorf("%w: %w", cache.ErrNoSpace, &cache.DiskError{Op: "write", Path: "/data/tmp/x", Err: errors.New("no space left on device")}), http.StatusServiceUnavailable, CodeUnavailable, 0},
		{"disk failed", &cache.DiskError{Op: "sync", Path: "/data/tmp/x", Err: errors.New("input/output error")}, http.StatusServiceUnavailable, CodeUnavailable, 0},
		{"out of the bound", fmt.Errorf("%w: nothing to evict", cache.ErrNoSpace), http.StatusServiceUnavailable, CodeUnavailable, 0},
	}
	for _, tc := range tests {
		e := asWireError(fillError(tc.err, now), notFoundFor(RouteBlob))
		if e.Status != tc.status || e.Code != tc.code || e.RetryAfter != tc.retryAfter {
			t.Errorf("%s: %d %s Retry-After %d, want %d %s %d", tc.name, e.Status, e.Code, e.RetryAfter, tc.status, tc.code, tc.retryAfter)
		}
		if tc.code != CodeBlobUnknown && !errors.Is(e, tc.err) {
			t.Errorf("%s: the cause is lost: %v", tc.name, e)
		}
	}
}

// TestLocalFailuresNameTheDisk: a fill that failed on the mirror's own
// disk is said as such, never as the upstream's transfer breaking.
func TestLocalFailuresNameTheDisk(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("%w: %w", cache.ErrNoSpace, &cache.DiskError{Op: "write", Path: "/data/tmp/x", Err: errors.New("no space left on device")}),
		&cache.DiskError{Op: "sync", Path: "/data/tmp/x", Err: errors.New("input/output error")},
	} {
		e := asWireError(fillError(err, time.Now()), notFoundFor(RouteBlob))
		if !strings.Contains(e.Message, "the mirror") || !strings.Contains(e.Message, "disk") {
			t.Errorf("%v: told %q, want the mirror's disk named", err, e.Message)
		}
		if strings.Contains(e.Message, "upstream registry") {
			t.Errorf("%v: told %q, which blames the upstream", err, e.Message)
		}
	}
}
