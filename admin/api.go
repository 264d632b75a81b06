package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/stats"
)

// Options configure the admin HTTP API.
type Options struct {
	// Store is the cache; required.
	Store *cache.Store
	// DefaultRegistry is the registry of names that carry none. Default
	// "docker.io".
	DefaultRegistry string
	// TempDir is where uploads are unpacked. Default os.TempDir().
	TempDir string
	// UploadLimit bounds the size of an uploaded archive in bytes; 0 means
	// no limit (the admin socket: only the owner can reach it).
	UploadLimit int64
	// Token, when set, must be sent as "Authorization: Bearer TOKEN".
	// Default: none (the admin socket).
	Token string
	// Mirror is the base URL of the mirror's registry API, which warm pulls
	// through. Default: none (warm answers 405).
	Mirror string
	// MirrorClient makes warm's requests to Mirror. Default
	// http.DefaultClient.
	MirrorClient *http.Client
	// Logger receives one line per failed request. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Stats are the registry API's live statistics (GET /admin/stats).
	// Default: none (the figures are zero).
	Stats *stats.Recorder
	// Upstreams reports the health of the upstream registries. Default:
	// none listed.
	Upstreams func() []RegistryHealth
	// Members reports the cluster's members. Default: no cluster, none
	// listed.
	Members func() []MemberHealth
	// Offline says the mirror never contacts an upstream (shown in stats).
	Offline bool
}

// Info is what GET /admin/info answers.
type Info struct {
	// Mirror is the registry API's base URL (for clients that warm).
	Mirror string `json:"mirror,omitempty"`
	Data   string `json:"data"`
}

// apiError is the one error type handlers return: an OCI error code, an
// HTTP status and a message safe to show.
type apiError struct {
	status int
	code   string
	msg    string
	detail any
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, code, format string, a ...any) error {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, a...)}
}

// unpackFactor bounds what an upload may unpack to, as a multiple of the
// upload limit: layers compress about 2-4×, so 8× leaves room for honest
// archives and stops a compression bomb from filling the disk.
const unpackFactor = 8

type server struct {
	opts Options
	disk diskMemo
}

// Admin is the admin API as Go methods, for the console, and as an HTTP
// handler; both answer from the same code.
type Admin struct{ *server }

// New returns the admin API configured by opts.
func New(opts Options) *Admin {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Admin{&server{opts: opts}}
}

// Handler returns the admin API:
//
//	GET  /admin/info      Info
//	GET  /admin/images    []Image: every tag the store knows
//	POST /admin/import    body: an archive (any supported format); query:
//	                      registry=, tag= (repeatable) → []Imported
//	GET  /admin/export    query: image= (repeatable) or all=1, platform= →
//	                      an OCI-layout tar
//	POST /admin/warm      body {"images": [...], "platform": "os/arch"} →
//	                      []WarmResult (200 even when some failed)
//	GET  /admin/fill      query: digest= → {} once no fill of the blob runs
//	                      (the failed fill's error if it failed): what a
//	                      warm pulling through the socket waits for
//	GET  /admin/stats     Stats: what the mirror holds, serves and saves
//	GET  /admin/image     query: image=NAME:TAG or NAME@DIGEST → ImageDetail
//	GET  /admin/images    ?q=PATTERN → []Image; with df=1 → ImagesAndDF (the
//	                      images and DF from one read of the index)
//	POST /admin/pin       body {"images": [...]} → {"pinned": [...]}
//	POST /admin/unpin     body {"images": [...]} → {"unpinned": [...]}
//	POST /admin/rm        body {"images": [...]}, ?dry_run=1 → cache.GCReport
//	POST /admin/gc        ?dry_run=1 → cache.GCReport
//	POST /admin/verify    ?repair=1 → cache.VerifyReport
//	GET  /admin/df        DF
//	GET  /admin/history   ?image=NAME[:TAG] → []TagHistory
//	GET  /admin/pins      Pins: the pin patterns
//
// Errors are OCI error JSON: {"errors":[{"code":..., "message":...}]}.
// Import and warm stream their progress as NDJSON when the request
// carries Accept: application/x-ndjson (see ImportEvent, WarmEvent).
func Handler(opts Options) http.Handler { return New(opts).Handler() }

// Handler returns the admin API's HTTP handler (see the package's Handler).
func (s *server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /admin/info", s.wrap(s.info))
	mux.Handle("GET /admin/images", s.wrap(s.images))
	mux.Handle("POST /admin/import", s.wrap(s.importArchive))
	mux.Handle("GET /admin/export", s.wrap(s.export))
	mux.Handle("POST /admin/warm", s.wrap(s.warm))
	mux.Handle("GET /admin/fill", s.wrap(s.waitFill))
	mux.Handle("GET /admin/stats", s.wrap(s.statsJSON))
	mux.Handle("GET /admin/image", s.wrap(s.imageJSON))
	s.maintenanceRoutes(mux)
	mux.Handle("GET /admin/pins", s.wrap(s.pinsJSON))
	mux.Handle("/", s.wrap(func(http.ResponseWriter, *http.Request) error {
		return errorf(http.StatusNotFound, "NOT_FOUND", "no such admin endpoint")
	}))
	return mux
}

// wrap checks the token and renders a returned error, the one place that
// writes error JSON.
func (s *server) wrap(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := s.authorize(r)
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *server) authorize(r *http.Request) error {
	if s.opts.Token == "" {
		return nil
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) != 1 {
		return errorf(http.StatusUnauthorized, "UNAUTHORIZED", "admin API: a valid bearer token is required")
	}
	return nil
}

func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = classify(err)
	}
	s.opts.Logger.Warn("admin request failed", "method", r.Method, "path", r.URL.Path, "status", ae.status, "err", err)
	w.Header().Set("Content-Type", "application/json")
	if ae.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pullcache admin"`)
	}
	w.WriteHeader(ae.status)
	type entry struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Detail  any    `json:"detail,omitempty"`
	}
	_ = json.NewEncoder(w).Encode(map[string][]entry{"errors": {{Code: ae.code, Message: ae.msg, Detail: ae.detail}}})
}

// classify maps an operation's error to a wire error. Archive errors are
// the user's to fix and their messages name the entry, so they are shown.
func classify(err error) *apiError {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &apiError{http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("upload larger than the limit of %d bytes", tooBig.Limit), nil}
	case errors.Is(err, archive.ErrNoName):
		// The detail lets a form ask for the name and send the archive again.
		return &apiError{http.StatusBadRequest, "NAME_INVALID", err.Error(), map[string]string{"reason": "NO_NAME"}}
	case errors.Is(err, archive.ErrBadName):
		return &apiError{http.StatusBadRequest, "NAME_INVALID", err.Error(), nil}
	case errors.Is(err, archive.ErrUnsafe), errors.Is(err, archive.ErrCorrupt):
		return &apiError{http.StatusBadRequest, "ARCHIVE_INVALID", err.Error(), nil}
	case errors.Is(err, cache.ErrNotFound), errors.Is(err, ErrIncomplete):
		return &apiError{http.StatusNotFound, "MANIFEST_UNKNOWN", err.Error(), nil}
	case errors.Is(err, cache.ErrNotPinned):
		return &apiError{http.StatusNotFound, "MANIFEST_UNKNOWN", err.Error(), nil}
	case errors.Is(err, ErrBadImage):
		return &apiError{http.StatusBadRequest, "NAME_INVALID", err.Error(), nil}
	case errors.Is(err, cache.ErrNoSpace), errors.Is(err, cache.ErrIndexReadOnly):
		return &apiError{http.StatusInsufficientStorage, "UNAVAILABLE", err.Error(), nil}
	}
	return &apiError{http.StatusInternalServerError, "UNKNOWN", "internal error; see the server log", nil}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func (s *server) info(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, Info{Mirror: s.opts.Mirror, Data: s.opts.Store.Dir()})
}

func (s *server) importArchive(w http.ResponseWriter, r *http.Request) error {
	body := r.Body
	if s.opts.UploadLimit > 0 {
		if r.ContentLength > s.opts.UploadLimit {
			return classify(&http.MaxBytesError{Limit: s.opts.UploadLimit})
		}
		body = http.MaxBytesReader(w, r.Body, s.opts.UploadLimit)
	}
	q := r.URL.Query()
	opts := archive.Options{DefaultRegistry: s.registry(q.Get("registry")), Tags: q["tag"], TempDir: s.opts.TempDir}
	if s.opts.UploadLimit > 0 {
		opts.MaxUnpacked = unpackFactor * s.opts.UploadLimit
	}
	defer s.disk.invalidate()
	if r.ContentLength > 0 {
		if err := s.opts.Store.EnsureRoom(2 * r.ContentLength); err != nil {
			return fmt.Errorf("the upload does not fit: %w", err)
		}
	}
	if wantsProgress(r) {
		return s.importWithProgress(w, body, func(progress func(string, int64, int64)) ([]Imported, error) {
			opts.Progress = func(done, total int64) { progress("verify", done, total) }
			return importReader(s.opts.Store, body, opts, s.opts.Now(), func(done, total int64) { progress("store", done, total) })
		})
	}
	done, err := ImportReader(s.opts.Store, body, opts, s.opts.Now())
	if err != nil {
		return uploadError(err)
	}
	return writeJSON(w, done)
}

// uploadError keeps a body-size error visible through the archive error
// that wraps it.
func uploadError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return classify(tooBig)
	}
	return err
}

func (s *server) registry(q string) string {
	if q != "" {
		return q
	}
	return s.opts.DefaultRegistry
}

func (s *server) export(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	opts := ExportOptions{All: q.Get("all") == "1" || q.Get("all") == "true"}
	for _, img := range q["image"] {
		n, err := archive.ParseName(img, s.opts.DefaultRegistry)
		if err != nil {
			return errorf(http.StatusBadRequest, "NAME_INVALID", "%s", err.Error())
		}
		opts.Names = append(opts.Names, n)
	}
	if len(opts.Names) == 0 && !opts.All {
		return errorf(http.StatusBadRequest, "NAME_INVALID", "name at least one image= or set all=1")
	}
	if p := q.Get("platform"); p != "" {
		pl, err := v1.ParsePlatform(p)
		if err != nil {
			return errorf(http.StatusBadRequest, "PLATFORM_INVALID", "platform %q: %v", p, err)
		}
		opts.Platform = pl
	}
	return exportResponse(s.opts.Store, opts, w)
}

// exportResponse resolves everything first, so that a missing image is a
// JSON error and not a cut tar; a failure once the tar has started aborts
// the connection.
func exportResponse(store *cache.Store, opts ExportOptions, w http.ResponseWriter) error {
	plan, res, err := PlanExport(store, opts)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	// A browser saves the bundle instead of showing it.
	w.Header().Set("Content-Disposition", `attachment; filename="pullcache-bundle.tar"`)
	w.Header().Set("Pullcache-Exported", strings.Join(res.Exported, ","))
	if len(res.Skipped) > 0 {
		b, _ := json.Marshal(res.Skipped)
		w.Header().Set("Pullcache-Skipped", string(b))
	}
	if err := plan.Write(store, w); err != nil {
		panic(http.ErrAbortHandler)
	}
	return nil
}

type warmRequest struct {
	Images   []string `json:"images"`
	Platform string   `json:"platform,omitempty"`
}

func (s *server) warm(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Mirror == "" {
		return errorf(http.StatusMethodNotAllowed, "UNSUPPORTED", "warm is not available on this endpoint")
	}
	var req warmRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		return errorf(http.StatusBadRequest, "BAD_REQUEST", "body: want {\"images\": [...], \"platform\": \"os/arch\"}")
	}
	// The mirror warm pulls through serves this store: an image is done
	// once the fills of its blobs have committed here.
	opts := WarmOptions{Mirror: s.opts.Mirror, Client: s.opts.MirrorClient, DefaultRegistry: s.opts.DefaultRegistry,
		Committed: s.opts.Store.WaitFill}
	if req.Platform != "" {
		pl, err := v1.ParsePlatform(req.Platform)
		if err != nil {
			return errorf(http.StatusBadRequest, "PLATFORM_INVALID", "platform %q: %v", req.Platform, err)
		}
		opts.Platform = pl
	}
	if !wantsProgress(r) {
		return writeJSON(w, Warm(r.Context(), opts, req.Images))
	}
	// With progress the warm goes on when the client leaves (a browser
	// tab closed), as the fills it started do anyway.
	st := newStream(w)
	opts.Progress = func(p Progress) {
		ev := WarmEvent{Image: p.Image, Done: p.Done, Total: p.Total, Finished: p.Finished}
		if p.Err != nil {
			ev.Error = p.Err.Error()
		}
		st.send(p.Image, p.Finished, ev)
	}
	for _, img := range req.Images {
		st.send(img, true, WarmEvent{Image: img})
	}
	results := Warm(context.WithoutCancel(r.Context()), opts, req.Images)
	st.send("", true, WarmEvent{Results: results})
	return nil
}

// waitFill answers once no fill of the blob is in flight: a client that
// read a blob's bytes through the mirror then knows it is committed (see
// WarmOptions.Committed).
func (s *server) waitFill(w http.ResponseWriter, r *http.Request) error {
	h, err := v1.NewHash(r.URL.Query().Get("digest"))
	if err != nil {
		return errorf(http.StatusBadRequest, "DIGEST_INVALID", "digest: %v", err)
	}
	if err := s.opts.Store.WaitFill(r.Context(), h); err != nil {
		return err
	}
	return writeJSON(w, struct{}{})
}

// Images is what GET /admin/images answers.
func (s *server) Images() ([]Image, error) { return List(s.opts.Store) }

// ErrorStatus is the HTTP status the admin API answers err with, and its
// message safe to show: the console reports errors as the API does.
func ErrorStatus(err error) (int, string) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = classify(err)
	}
	return ae.status, ae.msg
}
