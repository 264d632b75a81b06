package admin

import (
	"net/http"

	"github.com/pullcache/pullcache/cache"
)

// The maintenance operations as methods of the serving admin API, with its
// store and default registry: what the console calls, and the same
// functions the HTTP endpoints answer with.

// ListMatching is GET /admin/images?q=PATTERN.
func (s *server) ListMatching(pattern string) ([]Image, error) {
	return ListMatching(s.opts.Store, pattern)
}

// Each change made here drops the disk figures kept for the overview, so
// that the next look shows it.

// Pin is POST /admin/pin.
func (s *server) Pin(names []string) ([]string, error) {
	defer s.disk.invalidate()
	return Pin(s.opts.Store, names, s.opts.DefaultRegistry)
}

// Unpin is POST /admin/unpin.
func (s *server) Unpin(names []string) ([]string, error) {
	defer s.disk.invalidate()
	return Unpin(s.opts.Store, names, s.opts.DefaultRegistry)
}

// Remove is POST /admin/rm.
func (s *server) Remove(names []string, dryRun bool) (cache.GCReport, error) {
	if !dryRun {
		defer s.disk.invalidate()
	}
	return Remove(s.opts.Store, names, s.opts.DefaultRegistry, dryRun)
}

// GC is POST /admin/gc.
func (s *server) GC(dryRun bool) (cache.GCReport, error) {
	if !dryRun {
		defer s.disk.invalidate()
	}
	return s.opts.Store.GC(dryRun)
}

// DiskUsage is GET /admin/df.
func (s *server) DiskUsage() (DF, error) { return DiskUsage(s.opts.Store) }

// History is GET /admin/history?image=NAME[:TAG].
func (s *server) History(image string) ([]TagHistory, error) {
	return History(s.opts.Store, image, s.opts.DefaultRegistry)
}

// Pins are the pin patterns: in the configuration (pin:, which only the
// configuration can remove) and stored with pin.
type Pins struct {
	Configured []string `json:"configured"`
	Stored     []string `json:"stored"`
}

// Pins is GET /admin/pins.
func (s *server) Pins() Pins {
	c, st := s.opts.Store.Pins()
	return Pins{Configured: nonNilStrings(c), Stored: nonNilStrings(st)}
}

func (s *server) pinsJSON(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, s.Pins())
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GCReport is what gc and rm answer: what a pass freed, or would free.
type GCReport = cache.GCReport
