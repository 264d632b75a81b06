package admin

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/stats"
)

// Stats is what GET /admin/stats answers: what the store holds, what the
// registry API served and saved, what is in flight and what is wrong.
type Stats struct {
	Started time.Time `json:"started"`
	At      time.Time `json:"at"`
	Offline bool      `json:"offline"`
	// Disk is what GET /admin/df answers: the cache's use against its
	// bound, by category, and what is pinned (that figure measured at most
	// every pinnedRefresh; without pinned and reclaimable until the
	// start-up scan has counted every blob: Disk.Ready false).
	Disk DF `json:"disk"`
	// DiskError says why Disk could not be measured (the last figures are
	// shown).
	DiskError string `json:"disk_error,omitempty"`
	// Evictions are what eviction freed since the server started.
	Evictions cache.EvictionTotals `json:"evictions"`
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
	// Members are the cluster's members as this one sees them; absent
	// without a cluster.
	Members []MemberHealth `json:"members,omitempty"`
	// Errors are the most recent failed answers, newest first.
	Errors []stats.ErrorEvent `json:"errors"`
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

// MemberHealth is one member of the cluster as this member sees it.
type MemberHealth struct {
	URL  string `json:"url"`
	Self bool   `json:"self"`
	Up   bool   `json:"up"`
	// Since is when Up last changed (or the member was added).
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Share is the fraction of blobs the member owns among the live ones.
	Share float64 `json:"share"`
	// FillsInFlight are the member's blob fills now, -1 when it did not
	// say (down, or slow to answer).
	FillsInFlight int `json:"fills_in_flight"`
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
		Evictions: s.opts.Store.EvictionTotals(),
		Total:     snap.Total, HitRatio: snap.Total.HitRatio(),
		ManifestGetsSaved: snap.Total.ManifestGetsSaved(), BlobGetsSaved: snap.Total.BlobGetsSaved(),
		Minutes: snap.Minutes, Hours: snap.Hours, Errors: snap.Errors,
		Fills: []FillProgress{}, Upstreams: []RegistryHealth{},
	}
	out.Disk, out.DiskError = s.disk.get(s.opts.Store, now, s.opts.Logger)
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
	if s.opts.Members != nil {
		out.Members = s.opts.Members()
	}
	return out
}

func (s *server) statsJSON(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, s.Stats())
}

// pinnedRefresh is how long the pinned figure is reused: finding it reads
// the image graph from the index, and it changes only with pins and
// evictions (the admin API's own changes refresh it at once). The rest of
// the disk figures are measured on every call.
const pinnedRefresh = time.Minute

// diskMemo keeps the last pinned figure.
type diskMemo struct {
	mu     sync.Mutex
	pinned int64
	err    string
	at     time.Time
}

// invalidate makes the next get measure the pinned figure again.
func (m *diskMemo) invalidate() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.at = time.Time{}
}

func (m *diskMemo) get(store *cache.Store, now time.Time, log *slog.Logger) (DF, string) {
	u := store.Usage()
	if !u.Ready {
		// Pins are known once the start-up scan has counted the blobs;
		// until then the page shows use without them rather than wait.
		return DF{Usage: u}, ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at.IsZero() || now.Sub(m.at) >= pinnedRefresh {
		m.at = now
		d, err := DiskUsage(store)
		if err != nil {
			log.Warn("disk figures", "err", err)
			m.err = "what is pinned could not be measured: " + err.Error()
		} else {
			m.pinned, m.err = d.Pinned, ""
		}
	}
	return diskFigures(u, m.pinned), m.err
}
