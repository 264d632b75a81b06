package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ndjsonType is the media type of a progress stream: one JSON object a
// line, the last one saying how the operation ended.
const ndjsonType = "application/x-ndjson"

// wantsProgress reports whether the client asked for a progress stream.
func wantsProgress(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), ndjsonType)
}

// ImportEvent is one line of an import's progress stream.
type ImportEvent struct {
	// Phase is "verify" (hashing what was unpacked), "store" (writing
	// blobs into the cache), then "done" or "failed".
	Phase string `json:"phase"`
	// Done and Total are bytes of the phase.
	Done  int64 `json:"done,omitempty"`
	Total int64 `json:"total,omitempty"`
	// Imported is set on "done", Error on "failed".
	Imported []Imported `json:"imported,omitempty"`
	Error    *WireError `json:"error,omitempty"`
}

// WarmEvent is one line of a warm's progress stream: an image's progress,
// or, last, every image's result.
type WarmEvent struct {
	Image    string       `json:"image,omitempty"`
	Done     int64        `json:"done,omitempty"`
	Total    int64        `json:"total,omitempty"`
	Finished bool         `json:"finished,omitempty"`
	Error    string       `json:"error,omitempty"`
	Results  []WarmResult `json:"results,omitempty"`
}

// WireError is an error as the admin API sends it.
type WireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Status is the HTTP status the error would have had on its own.
	Status int `json:"status,omitempty"`
	// Detail qualifies the code, e.g. {"reason": "NO_NAME"}.
	Detail any `json:"detail,omitempty"`
}

func wireError(err error) *WireError {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = classify(err)
	}
	return &WireError{Code: ae.code, Message: ae.msg, Status: ae.status, Detail: ae.detail}
}

// progressEvery is how often a progress stream writes a line for the same
// thing in progress; beginnings and ends are always written.
const progressEvery = 100 * time.Millisecond

// stream writes a progress stream. Nothing is sent before the first
// event, so an operation that fails at once still answers with its own
// status.
type stream struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
	last    map[string]time.Time
}

func newStream(w http.ResponseWriter) *stream {
	return &stream{w: w, rc: http.NewResponseController(w), last: map[string]time.Time{}}
}

// send writes v unless a line about key was written less than
// progressEvery ago (force: always).
func (s *stream) send(key string, force bool, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if !force && now.Sub(s.last[key]) < progressEvery {
		return
	}
	s.last[key] = now
	if !s.started {
		s.started = true
		s.w.Header().Set("Content-Type", ndjsonType)
		// A progress stream must not sit in a proxy's buffer.
		s.w.Header().Set("X-Accel-Buffering", "no")
		s.w.WriteHeader(http.StatusOK)
	}
	b, _ := json.Marshal(v)
	// A client that went away does not stop the operation.
	_, _ = s.w.Write(append(b, '\n'))
	_ = s.rc.Flush()
}

func (s *stream) isStarted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// importWithProgress runs an import whose body is body, streaming its
// progress. An error before the first event is returned (after the rest
// of the body is read, so that a browser still uploading sees the
// answer); after it, it ends the stream.
func (s *server) importWithProgress(w http.ResponseWriter, body io.Reader, run func(progress func(phase string, done, total int64)) ([]Imported, error)) error {
	st := newStream(w)
	phase := ""
	done, err := run(func(p string, d, t int64) {
		st.send("import", p != phase, ImportEvent{Phase: p, Done: d, Total: t})
		phase = p
	})
	if err != nil && !st.isStarted() {
		_, _ = io.Copy(io.Discard, body)
		return uploadError(err)
	}
	if err != nil {
		s.opts.Logger.Warn("admin import failed", "err", err)
		st.send("import", true, ImportEvent{Phase: "failed", Error: wireError(uploadError(err))})
		return nil
	}
	st.send("import", true, ImportEvent{Phase: "done", Imported: done})
	return nil
}
