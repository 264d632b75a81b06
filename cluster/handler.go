package cluster

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StatusPath is the cluster's own endpoint: this member's view of the
// members, answered only to requests with the secret.
const StatusPath = "/cluster/v1/status"

type hopKey struct{}

// hopped says whether ctx is a request another member sent.
func hopped(ctx context.Context) bool {
	v, _ := ctx.Value(hopKey{}).(bool)
	return v
}

// Handler wraps the main listener's handler. Requests under /cluster/ are
// answered here, and only with the secret (401 without). A request with
// the secret and the hop mark is remembered while it runs, so that the
// fill it causes goes to the upstream, never to a third member.
func (n *Node) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trusted := n.Trusted(r)
		if strings.HasPrefix(r.URL.Path, "/cluster/") {
			n.serveCluster(w, r, trusted)
			return
		}
		if !trusted || r.Header.Get(HopHeader) == "" {
			next.ServeHTTP(w, r)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), hopKey{}, true))
		digest, isBlob := blobDigest(r.URL.Path)
		if !isBlob {
			n.metrics.peerServed.WithLabelValues("served").Inc()
			next.ServeHTTP(w, r)
			return
		}
		// Two members that each think the other owns a blob would wait on
		// each other's fill: the one asked while it asks refuses, and the
		// asker goes to the upstream.
		if n.tracked(n.opening, digest) {
			n.metrics.peerServed.WithLabelValues("refused").Inc()
			writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "this member is fetching the blob from another member")
			return
		}
		n.metrics.peerServed.WithLabelValues("served").Inc()
		n.track(n.hops, digest, 1)
		defer n.track(n.hops, digest, -1)
		next.ServeHTTP(w, r)
	})
}

// blobDigest finds the digest of a blob request's path.
func blobDigest(p string) (string, bool) {
	i := strings.LastIndex(p, "/blobs/")
	if i < 0 || !strings.HasPrefix(p, "/v2/") {
		return "", false
	}
	return p[i+len("/blobs/"):], true
}

func (n *Node) serveCluster(w http.ResponseWriter, r *http.Request, trusted bool) {
	switch {
	case !trusted:
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "the cluster endpoints need the cluster's secret")
	case r.URL.Path != StatusPath:
		writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "no such cluster endpoint")
	case r.Method != http.MethodGet:
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "GET only")
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(n.Status())
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// Status is one member's view of the cluster.
type Status struct {
	Self    string         `json:"self"`
	Members []MemberStatus `json:"members"`
	// FillsInFlight are the blob fills running on this member (-1 when
	// not known); PeerStreams the blob streams it receives from members.
	FillsInFlight int `json:"fills_in_flight"`
	PeerStreams   int `json:"peer_streams"`
}

// MemberStatus is what a member thinks of one member.
type MemberStatus struct {
	URL string `json:"url"`
	Up  bool   `json:"up"`
	// Since is when Up last changed (or the member was added).
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	// Share is the fraction of keys the member owns among the live ones.
	Share float64 `json:"share"`
}

// Status returns this member's view now.
func (n *Node) Status() Status {
	fills := -1
	if n.opts.FillsInFlight != nil {
		fills = n.opts.FillsInFlight()
	}
	shares := Shares(n.Live())
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Status{Self: n.self, FillsInFlight: fills, PeerStreams: n.fetches}
	for _, u := range sortedKeys(n.members) {
		m := n.members[u]
		up := m.up || u == n.self
		st.Members = append(st.Members, MemberStatus{URL: u, Up: up, Since: m.since, LastError: m.lastErr, Share: shares[u]})
	}
	return st
}

// shareSamples is how many keys Shares hashes: enough for a share
// within about a percent.
const shareSamples = 4096

// Shares estimates the fraction of keys each member owns.
func Shares(members []string) map[string]float64 {
	out := map[string]float64{}
	if len(members) == 0 {
		return out
	}
	for i := range shareSamples {
		owner := Rank(BlobKey("sample-"+strconv.Itoa(i)), members)[0]
		out[owner] += 1.0 / shareSamples
	}
	return out
}
