package admin

import (
	"io/fs"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/pullcache/pullcache/stats"
)

// Stats is what GET /admin/stats answers: what the store holds, what the
// registry API served and saved, what is in flight and what is wrong.
type Stats struct {
	Started time.Time `json:"started"`
	At      time.Time `json:"at"`
	Offline bool      `json:"offline"`
	// Store is the blob files on disk and their bytes.
	Store Usage `json:"store"`
	// Total is every count since the server started.
	Total             stats.Counts `json:"total"`
	HitRatio          float64      `json:"hit_ratio"`
	ManifestGetsSaved int64        `json:"manifest_gets_saved"`
	BlobGetsSaved     int64        `json:"blob_gets_saved"`
	// Minutes are the last hour, one point a minute; Hours the last day.
	Minutes []stats.Point `json:"minutes"`
	Hours   []stats.Point `json:"hours"`
	// Fills are the blob downloads in flight.
	Fills []FillProgress `json:"fills"`
	// Upstreams is the health of every configured registry.
	Upstreams []RegistryHealth `json:"upstreams"`
	// Errors are the most recent failed answers, newest first.
	Errors []stats.ErrorEvent `json:"errors"`
}

// Usage is what the store's blob files take on disk.
type Usage struct {
	Files int64 `json:"files"`
	Bytes int64 `json:"bytes"`
	// CountedAt is when the files were counted (counts are kept a while).
	CountedAt time.Time `json:"counted_at"`
}

// FillProgress is a blob download in flight.
type FillProgress struct {
	Digest     string `json:"digest"`
	Repository string `json:"repository"`
	Written    int64  `json:"written"`
	// Size is the whole blob, or -1 while unknown.
	Size    int64     `json:"size"`
	Started time.Time `json:"started"`
}

// RegistryHealth is what the endpoints of one upstream registry last did.
type RegistryHealth struct {
	Registry  string           `json:"registry"`
	Endpoints []EndpointHealth `json:"endpoints"`
}

// EndpointHealth is one endpoint of a registry.
type EndpointHealth struct {
	Host string `json:"host"`
	// Down: the endpoint failed recently and is tried after the others
	// (failover) until DownUntil.
	Down        bool      `json:"down"`
	DownUntil   time.Time `json:"down_until,omitzero"`
	LastOK      time.Time `json:"last_ok,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Stats collects the figures GET /admin/stats answers with.
func (s *server) Stats() Stats {
	snap := s.opts.Stats.Snapshot()
	now := s.opts.Now()
	out := Stats{
		Started: snap.Started, At: now.UTC(), Offline: s.opts.Offline,
		Store: s.usage.get(s.opts.Store.Dir(), now),
		Total: snap.Total, HitRatio: snap.Total.HitRatio(),
		ManifestGetsSaved: snap.Total.ManifestGetsSaved(), BlobGetsSaved: snap.Total.BlobGetsSaved(),
		Minutes: snap.Minutes, Hours: snap.Hours, Errors: snap.Errors,
		Fills: []FillProgress{}, Upstreams: []RegistryHealth{},
	}
	if out.Errors == nil {
		out.Errors = []stats.ErrorEvent{}
	}
	for _, f := range s.opts.Store.Fills() {
		out.Fills = append(out.Fills, FillProgress{Digest: f.Digest.String(), Repository: f.Origin,
			Written: f.Written, Size: f.Size, Started: f.Started.UTC()})
	}
	if s.opts.Upstreams != nil {
		out.Upstreams = s.opts.Upstreams()
		for i := range out.Upstreams {
			for j := range out.Upstreams[i].Endpoints {
				ep := &out.Upstreams[i].Endpoints[j]
				ep.Down = ep.DownUntil.After(now)
			}
		}
	}
	return out
}

func (s *server) statsJSON(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, s.Stats())
}

// usageRefresh is how long a count of the blob files is reused: counting
// walks the blobs directory, which takes a while with a million files.
const usageRefresh = 10 * time.Second

// usageMemo keeps the last count of the blob files.
//
// TODO(lifecycle): the store's own size accounting (GET /admin/df)
// replaces this walk, and adds the bound it is kept under.
type usageMemo struct {
	mu   sync.Mutex
	last Usage
}

func (m *usageMemo) get(dir string, now time.Time) Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.last.CountedAt.IsZero() && now.Sub(m.last.CountedAt) < usageRefresh {
		return m.last
	}
	u := Usage{CountedAt: now.UTC()}
	_ = filepath.WalkDir(filepath.Join(dir, "blobs"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			u.Files++
			u.Bytes += fi.Size()
		}
		return nil
	})
	m.last = u
	return u
}
