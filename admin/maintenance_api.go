package admin

import (
	"bufio"
	"encoding/json"
	"net/http"

	"github.com/pullcache/pullcache/cache"
)

func (s *server) maintenanceRoutes(mux *http.ServeMux) {
	mux.Handle("POST /admin/pin", s.wrap(s.pin))
	mux.Handle("POST /admin/unpin", s.wrap(s.unpin))
	mux.Handle("POST /admin/rm", s.wrap(s.rm))
	mux.Handle("POST /admin/gc", s.wrap(s.gc))
	mux.Handle("POST /admin/verify", s.wrap(s.verify))
	mux.Handle("GET /admin/df", s.wrap(s.df))
	mux.Handle("GET /admin/history", s.wrap(s.history))
}

// images answers GET /admin/images?q=PATTERN with []Image, or with df=1
// an ImagesAndDF (the images and the disk figures, from one read of the index).
func (s *server) images(w http.ResponseWriter, r *http.Request) error {
	pattern := r.URL.Query().Get("q")
	if flag(r, "df") {
		l, err := ListWithDF(s.opts.Store, pattern)
		if err != nil {
			return err
		}
		return writeJSON(w, l)
	}
	l, err := s.opts.Store.List()
	if err != nil {
		return err
	}
	streamImages(w, l.Images, pattern)
	return nil
}

// streamImages writes the images that match pattern as a JSON array, one
// entry at a time: a hundred thousand images are not held a second time
// as []Image, nor a third as one encoded buffer.
func streamImages(w http.ResponseWriter, infos []cache.ImageInfo, pattern string) {
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	bw.WriteByte('[')
	first := true
	for _, i := range infos {
		if !matchImage(pattern, i) {
			continue
		}
		if !first {
			bw.WriteByte(',')
		}
		first = false
		// An Image always encodes; a failed write is a client that left,
		// with nothing more to be told.
		if err := enc.Encode(toImage(i)); err != nil {
			return
		}
	}
	bw.WriteString("]\n")
	_ = bw.Flush()
}

// imagesRequest is the body of pin, unpin and rm.
type imagesRequest struct {
	Images []string `json:"images"`
}

func readImages(w http.ResponseWriter, r *http.Request) ([]string, error) {
	var req imagesRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || len(req.Images) == 0 {
		return nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "body: want {\"images\": [\"NAME:TAG\", ...]}")
	}
	return req.Images, nil
}

func flag(r *http.Request, name string) bool {
	v := r.URL.Query().Get(name)
	return v == "1" || v == "true"
}

func (s *server) pin(w http.ResponseWriter, r *http.Request) error {
	names, err := readImages(w, r)
	if err != nil {
		return err
	}
	done, err := s.Pin(names)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string][]string{"pinned": done})
}

func (s *server) unpin(w http.ResponseWriter, r *http.Request) error {
	names, err := readImages(w, r)
	if err != nil {
		return err
	}
	done, err := s.Unpin(names)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string][]string{"unpinned": done})
}

func (s *server) rm(w http.ResponseWriter, r *http.Request) error {
	names, err := readImages(w, r)
	if err != nil {
		return err
	}
	rep, err := s.Remove(names, flag(r, "dry_run"))
	if err != nil {
		return err
	}
	return writeJSON(w, rep)
}

func (s *server) gc(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.GC(flag(r, "dry_run"))
	if err != nil {
		return err
	}
	return writeJSON(w, rep)
}

// VerifyEvent is one line of a verify's progress stream (Accept:
// application/x-ndjson): bytes hashed so far, and last the report or the
// error.
type VerifyEvent struct {
	Done   int64               `json:"done,omitempty"`
	Total  int64               `json:"total,omitempty"`
	Report *cache.VerifyReport `json:"report,omitempty"`
	// Clean comes with the report: nothing is wrong (what makes
	// pullcache verify exit 0).
	Clean bool       `json:"clean,omitempty"`
	Error *WireError `json:"error,omitempty"`
}

func (s *server) verify(w http.ResponseWriter, r *http.Request) error {
	opts := cache.VerifyOptions{Repair: flag(r, "repair")}
	if !wantsProgress(r) {
		rep, err := s.opts.Store.Verify(opts)
		if err != nil {
			return err
		}
		return writeJSON(w, rep)
	}
	st := newStream(w)
	opts.Progress = func(done, total int64) { st.send("verify", false, VerifyEvent{Done: done, Total: total}) }
	rep, err := s.opts.Store.Verify(opts)
	switch {
	case err != nil && !st.isStarted():
		return err
	case err != nil:
		s.opts.Logger.Warn("admin verify failed", "err", err)
		st.send("verify", true, VerifyEvent{Error: wireError(err)})
	default:
		st.send("verify", true, VerifyEvent{Report: &rep, Clean: rep.Clean()})
	}
	return nil
}

func (s *server) df(w http.ResponseWriter, _ *http.Request) error {
	d, err := DiskUsage(s.opts.Store)
	if err != nil {
		return err
	}
	return writeJSON(w, d)
}

func (s *server) history(w http.ResponseWriter, r *http.Request) error {
	img := r.URL.Query().Get("image")
	if img == "" {
		return errorf(http.StatusBadRequest, "NAME_INVALID", "name the image: ?image=NAME[:TAG]")
	}
	h, err := History(s.opts.Store, img, s.opts.DefaultRegistry)
	if err != nil {
		return err
	}
	return writeJSON(w, h)
}
