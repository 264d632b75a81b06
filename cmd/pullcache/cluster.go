package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/cluster"
	"github.com/pullcache/pullcache/config"
	"github.com/pullcache/pullcache/health"
	"github.com/pullcache/pullcache/proxy"
)

// newClusterNode builds this member's view of the cluster, or nil when
// the configuration names none; obs is given its members to show.
func newClusterNode(cfg config.Config, store *cache.Store, obs *observers, log *slog.Logger, reg prometheus.Registerer) (*cluster.Node, error) {
	if !cfg.Cluster.Enabled() {
		return nil, nil
	}
	secret, err := readSecret(cfg.Cluster.SecretFile)
	if err != nil {
		return nil, err
	}
	node, err := cluster.New(cluster.Options{
		Self:          cfg.Cluster.Self,
		Peers:         cfg.Cluster.Peers,
		PeersDNS:      cfg.Cluster.PeersDNS,
		Secret:        secret,
		ProbePath:     "/readyz",
		FillsInFlight: func() int { return len(store.Fills()) },
		Logger:        log,
		Metrics:       reg,
	})
	if err == nil && obs != nil {
		obs.members = memberHealth(node, statusClient{secret: secret, timeout: memberAskTimeout})
	}
	return node, err
}

// memberAskTimeout bounds how long the overview waits for a member's
// fills: a slow member shows "?" rather than holding the page.
const memberAskTimeout = time.Second

// memberHealth reports the members for the admin API's stats and the
// console's overview: this member's view of them, and each live member's
// fills in flight asked of it in parallel, as `pullcache cluster` does.
func memberHealth(node *cluster.Node, sc statusClient) func() []admin.MemberHealth {
	return func() []admin.MemberHealth {
		view := node.Status()
		out := make([]admin.MemberHealth, len(view.Members))
		var wg sync.WaitGroup
		for i, m := range view.Members {
			out[i] = admin.MemberHealth{URL: m.URL, Self: m.URL == view.Self, Up: m.Up, Since: m.Since,
				LastError: m.LastError, Share: m.Share, FillsInFlight: -1}
			switch {
			case out[i].Self:
				out[i].FillsInFlight = view.FillsInFlight
			case m.Up:
				wg.Go(func() {
					if st, err := sc.get(context.Background(), m.URL); err == nil {
						out[i].FillsInFlight = st.FillsInFlight
					}
				})
			}
		}
		wg.Wait()
		return out
	}
}

// readSecret reads the cluster's secret; surrounding white space (the
// newline an editor adds) is not part of it.
func readSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster.secret_file: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < 16 {
		return nil, fmt.Errorf("cluster.secret_file %s: the secret must have at least 16 characters", path)
	}
	return b, nil
}

// reloadPeersOnHUP re-reads the configuration (file, environment, flags)
// on SIGHUP and gives the node the new member list: members join and
// leave without a restart. It returns a function that stops listening.
func reloadPeersOnHUP(args []string, node *cluster.Node, log *slog.Logger) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				reloadPeers(args, node, log)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

func reloadPeers(args []string, node *cluster.Node, log *slog.Logger) {
	cfg, err := loadConfig("serve", args, io.Discard)
	if err == nil && len(cfg.Cluster.Peers) > 0 {
		err = node.SetPeers(cfg.Cluster.Peers)
	}
	if err != nil {
		log.Warn("configuration not reloaded; the cluster's members stay as they were", "err", err)
		return
	}
	log.Info("configuration reloaded", "members", strings.Join(node.Members(), ","))
}

// runCluster prints the cluster as one member sees it, and each member's
// fills, from the members' status endpoints.
func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cluster", stderr)
	url := fs.String("url", "", "a member's URL (default: cluster.self, else the --listen address on loopback)")
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "give up on a member after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pullcache cluster [flags]\n\nShows the cluster's members, their health, ownership share and fills in flight.")
		fs.PrintDefaults()
	}
	cfg, pos, err := commandConfig(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("cluster: unexpected argument %q", pos[0])}
	}
	if cfg.Cluster.SecretFile == "" {
		return usageError{"cluster: give --cluster-secret-file (or cluster.secret_file in the configuration)"}
	}
	secret, err := readSecret(cfg.Cluster.SecretFile)
	if err != nil {
		return err
	}
	base := *url
	if base == "" {
		base = cfg.Cluster.Self
	}
	if base == "" {
		base = healthURL(cfg.Listen, "")
	}
	sc := statusClient{secret: secret, timeout: *timeout}
	view, err := sc.get(ctx, strings.TrimSuffix(base, "/"))
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	fills := map[string]cluster.Status{}
	for _, m := range view.Members {
		if st, err := sc.get(ctx, m.URL); err == nil {
			fills[m.URL] = st
		}
	}
	if *asJSON {
		return printJSON(stdout, map[string]any{"view": view, "members": fills})
	}
	printCluster(stdout, view, fills)
	return nil
}

type statusClient struct {
	secret  []byte
	timeout time.Duration
}

func (c statusClient) get(ctx context.Context, member string) (cluster.Status, error) {
	var st cluster.Status
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, member+cluster.StatusPath, nil)
	if err != nil {
		return st, err
	}
	req.Header.Set(cluster.SecretHeader, string(c.secret))
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET %s%s: %s", member, cluster.StatusPath, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return st, errors.Join(fmt.Errorf("status of %s", member), err)
	}
	return st, nil
}

func printCluster(w io.Writer, view cluster.Status, each map[string]cluster.Status) {
	fmt.Fprintf(w, "as seen by %s\n", view.Self)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tHEALTH\tSINCE\tSHARE\tFILLS\tPEER STREAMS\tLAST ERROR")
	for _, m := range view.Members {
		health := "up"
		if !m.Up {
			health = "down"
		}
		fills, streams := "?", "?"
		if st, ok := each[m.URL]; ok {
			fills, streams = fmt.Sprint(st.FillsInFlight), fmt.Sprint(st.PeerStreams)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\t%s\t%s\t%s\n", m.URL, health, m.Since.Local().Format(time.DateTime),
			100*m.Share, fills, streams, m.LastError)
	}
	tw.Flush()
}

// wrapAllowed layers the clients built for allowed registries as the
// configured ones are (owners, shared bucket).
func wrapAllowed(wrap func(string, proxy.Upstream) proxy.Upstream, allow func(string) (proxy.Upstream, bool)) func(string) (proxy.Upstream, bool) {
	if allow == nil {
		return nil
	}
	return func(name string) (proxy.Upstream, bool) {
		up, ok := allow(name)
		if !ok {
			return nil, false
		}
		return wrap(name, up), true
	}
}

// clusterState is readiness's cluster check: degraded while a member is
// down (its share is served by the others), naming at most three.
func clusterState(node *cluster.Node) (health.State, string) {
	down := node.Down()
	if len(down) == 0 {
		return health.OK, ""
	}
	var names []string
	for _, u := range slices.Sorted(maps.Keys(down)) {
		names = append(names, u+" ("+down[u]+")")
	}
	if n := len(names); n > 3 {
		names = append(names[:3], fmt.Sprintf("and %d more", n-3))
	}
	return health.Degraded, "cluster members down, their share served by the others: " + strings.Join(names, "; ")
}

// unlimitedPeers sends the other members' requests (they carry the
// secret) to h past the per-client request limit: a member asks a peer for
// every blob the peer owns on behalf of all its own clients, and a 429
// there would send it to the upstream instead.
func unlimitedPeers(node *cluster.Node, h, limited http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if node.Trusted(r) {
			h.ServeHTTP(w, r)
			return
		}
		limited.ServeHTTP(w, r)
	})
}
