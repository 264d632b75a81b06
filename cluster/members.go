package cluster

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Node.
type Options struct {
	// Self is this member's URL as the others reach it; required. It must
	// be among Peers (or among the members PeersDNS resolves to).
	Self string
	// Peers are the members' URLs, Self included. Default none.
	Peers []string
	// PeersDNS is a name resolved every ResolveInterval to the members:
	// SRV when it starts with "_" (_http._tcp.pullcache.ns.svc), else A
	// and AAAA records, with Self's scheme and port. Default none.
	PeersDNS string
	// Secret authenticates peer traffic; required, both ways.
	Secret []byte
	// ProbePath is what a probe asks of every other member: a member that
	// does not answer it 200 owns nothing. Default "/healthz" (pullcache
	// serve passes "/readyz", so that a member draining on SIGTERM hands
	// its share over before it stops).
	ProbePath string
	// ProbeInterval is how often every other member's ProbePath is probed,
	// and ProbeTimeout how long a probe may take. Defaults 2s and 2s.
	ProbeInterval, ProbeTimeout time.Duration
	// ResolveInterval is how often PeersDNS is resolved. Default 5s.
	ResolveInterval time.Duration
	// PeerStall aborts a blob stream from a member that sends nothing for
	// this long, and takes the fill over. Default 10s.
	PeerStall time.Duration
	// Resolver resolves PeersDNS. Default net.DefaultResolver.
	Resolver Resolver
	// Transport carries peer requests. Default: a transport of its own.
	Transport http.RoundTripper
	// FillsInFlight, when set, says how many blob fills run on this member
	// (for the status endpoint). Default: not reported.
	FillsInFlight func() int
	// Logger receives membership changes. Default: discard.
	Logger *slog.Logger
	// Metrics registers the cluster's metrics. Default: none registered.
	Metrics prometheus.Registerer
}

// Resolver is what PeersDNS needs of net.Resolver.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// Node is one member's view of the cluster.
type Node struct {
	opts    Options
	self    string
	secret  [32]byte // sha256 of the secret: compared in constant time
	client  *http.Client
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	members map[string]*member
	hops    map[string]int // blob digests asked for by a peer, now
	opening map[string]int // blob digests being opened from a peer, now
	fetches int            // blob streams from peers open now

	stop func()
	wg   sync.WaitGroup
}

// member is what a node knows of another member.
type member struct {
	up      bool
	since   time.Time
	lastErr string
	// down is closed when the member is marked down: streams from it stop
	// at once instead of waiting for a stall.
	down chan struct{}
}

// New returns a Node; Start begins probing and resolving.
func New(opts Options) (*Node, error) {
	self, err := NormalizeURL(opts.Self)
	if err != nil {
		return nil, fmt.Errorf("cluster.self: %w", err)
	}
	if len(opts.Secret) == 0 {
		return nil, errors.New("cluster: a secret is required")
	}
	setDefaults(&opts)
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	n := &Node{opts: opts, self: self, secret: sha256.Sum256(opts.Secret), log: opts.Logger, metrics: m,
		client:  &http.Client{Transport: opts.Transport, CheckRedirect: noRedirects},
		members: map[string]*member{}, hops: map[string]int{}, opening: map[string]int{}}
	if opts.PeersDNS == "" {
		if err := n.SetPeers(opts.Peers); err != nil {
			return nil, err
		}
	} else {
		n.setMembers([]string{self})
	}
	return n, nil
}

func setDefaults(o *Options) {
	if o.ProbePath == "" {
		o.ProbePath = "/healthz"
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 2 * time.Second
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 2 * time.Second
	}
	if o.ResolveInterval <= 0 {
		o.ResolveInterval = 5 * time.Second
	}
	if o.PeerStall <= 0 {
		o.PeerStall = 10 * time.Second
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Transport == nil {
		o.Transport = newTransport()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// newTransport is the peer transport: quick to give up on a member that
// does not answer a connection, patient with one that waits for its
// upstream before it answers.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 15 * time.Second}).DialContext
	t.MaxIdleConnsPerHost = 64
	t.ResponseHeaderTimeout = 60 * time.Second
	return t
}

// A peer answers; it never redirects, and following one would leave the
// cluster with the secret.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NormalizeURL turns a member's URL into the form members are known by:
// scheme://host:port, lower-case, the default port made explicit.
func NormalizeURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "", fmt.Errorf("%q: want http://HOST:PORT or https://HOST:PORT", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("%q: a member is scheme://host:port, without path, query or user", raw)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port), nil
}

// Self is this member's URL.
func (n *Node) Self() string { return n.self }

// SetPeers replaces the member list (on a configuration reload, say):
// members that stay keep their state, new ones start live, and Self must
// be among them.
func (n *Node) SetPeers(peers []string) error {
	list := make([]string, 0, len(peers))
	for _, p := range peers {
		u, err := NormalizeURL(p)
		if err != nil {
			return fmt.Errorf("cluster.peers: %w", err)
		}
		list = append(list, u)
	}
	if !slices.Contains(list, n.self) {
		return fmt.Errorf("cluster.self %s is not among cluster.peers %v", n.self, list)
	}
	n.setMembers(list)
	return nil
}

func (n *Node) setMembers(list []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	keep := map[string]bool{}
	for _, u := range list {
		keep[u] = true
		if _, ok := n.members[u]; !ok {
			n.members[u] = &member{up: true, since: time.Now(), down: make(chan struct{})}
			n.metrics.memberUp.WithLabelValues(u).Set(1)
			n.log.Info("cluster member added", "member", u)
		}
	}
	for u, m := range n.members {
		if !keep[u] {
			delete(n.members, u)
			if m.up {
				close(m.down)
			}
			n.metrics.forget(u)
			n.log.Info("cluster member removed", "member", u)
		}
	}
}

// Members returns every member known, sorted.
func (n *Node) Members() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.members))
	for u := range n.members {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// Live returns the members thought alive, Self always among them, sorted.
func (n *Node) Live() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.liveLocked()
}

func (n *Node) liveLocked() []string {
	out := []string{n.self}
	for u, m := range n.members {
		if m.up && u != n.self {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// Owners returns the live members in key's hashing order: its owner
// first, then who takes over from it.
func (n *Node) Owners(key string) []string { return Rank(key, n.Live()) }

// markDown takes a member out of ownership at once (a failed request or
// probe); the prober brings it back when it answers again.
func (n *Node) markDown(u string, cause error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m, ok := n.members[u]
	if !ok || u == n.self {
		return
	}
	m.lastErr = cause.Error()
	if !m.up {
		return
	}
	m.up, m.since = false, time.Now()
	close(m.down)
	n.metrics.memberUp.WithLabelValues(u).Set(0)
	n.log.Warn("cluster member down", "member", u, "err", cause)
}

func (n *Node) markUp(u string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m, ok := n.members[u]
	if !ok || m.up {
		return
	}
	m.up, m.since, m.down = true, time.Now(), make(chan struct{})
	n.metrics.memberUp.WithLabelValues(u).Set(1)
	n.log.Info("cluster member up", "member", u)
}

// downSignal returns a channel closed when u is marked down (closed
// already if it is down or unknown).
func (n *Node) downSignal(u string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m, ok := n.members[u]; ok && m.up {
		return m.down
	}
	closed := make(chan struct{})
	close(closed)
	return closed
}

// Trusted reports whether r carries the cluster's secret. The comparison
// of fixed-size hashes takes the same time whatever the header holds.
func (n *Node) Trusted(r *http.Request) bool {
	v := r.Header.Get(SecretHeader)
	if v == "" {
		return false
	}
	got := sha256.Sum256([]byte(v))
	return subtle.ConstantTimeCompare(got[:], n.secret[:]) == 1
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Down returns the members thought down, each with its last error.
func (n *Node) Down() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]string{}
	for u, m := range n.members {
		if !m.up && u != n.self {
			out[u] = m.lastErr
		}
	}
	return out
}
