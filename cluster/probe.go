package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Start begins probing the other members (and resolving PeersDNS); Close
// stops it.
func (n *Node) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	n.wg.Add(1)
	go n.every(ctx, n.opts.ProbeInterval, n.probeAll)
	if n.opts.PeersDNS != "" {
		n.resolve(ctx)
		n.wg.Add(1)
		go n.every(ctx, n.opts.ResolveInterval, n.resolve)
	}
}

// Close stops probing and resolving and waits for it.
func (n *Node) Close() {
	if n.stop != nil {
		n.stop()
	}
	n.wg.Wait()
}

func (n *Node) every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	defer n.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// probeAll asks every other member's /healthz at once, so one that hangs
// does not delay the verdict on the others.
func (n *Node) probeAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, u := range n.Members() {
		if u == n.self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.probe(ctx, u); err != nil {
				if ctx.Err() == nil {
					n.markDown(u, err)
				}
				return
			}
			n.markUp(u)
		}()
	}
	wg.Wait()
}

func (n *Node) probe(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, n.opts.ProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+n.opts.ProbePath, nil)
	if err != nil {
		return err
	}
	req.Header.Set(SecretHeader, string(n.opts.Secret))
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("health probe: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health probe: status %d", resp.StatusCode)
	}
	return nil
}

// resolve replaces the members with what PeersDNS resolves to now. A
// failed lookup keeps the last list: DNS trouble is not a membership
// change.
func (n *Node) resolve(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.ResolveInterval)
	defer cancel()
	list, err := n.lookup(ctx)
	if err == nil && len(list) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		n.log.Warn("cluster.peers_dns not resolved; the members stay as they were", "name", n.opts.PeersDNS, "err", err)
		return
	}
	if !slices.Contains(list, n.self) {
		// Self stays a member (it serves its own clients as owner of its
		// share), but the others will not ask it: say so.
		n.log.Warn("cluster.self is not among the members cluster.peers_dns resolves to", "self", n.self, "members", list)
		list = append(list, n.self)
	}
	n.setMembers(list)
}

func (n *Node) lookup(ctx context.Context) ([]string, error) {
	scheme, port := schemePort(n.self)
	name := n.opts.PeersDNS
	if strings.HasPrefix(name, "_") {
		_, srvs, err := n.opts.Resolver.LookupSRV(ctx, "", "", name)
		if err != nil {
			return nil, err
		}
		out := make([]string, 0, len(srvs))
		for _, s := range srvs {
			out = append(out, memberURL(scheme, strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))))
		}
		return out, nil
	}
	addrs, err := n.opts.Resolver.LookupHost(ctx, name)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, memberURL(scheme, a, port))
	}
	return out, nil
}

func memberURL(scheme, host, port string) string {
	u, err := NormalizeURL(scheme + "://" + net.JoinHostPort(host, port))
	if err != nil {
		return scheme + "://" + net.JoinHostPort(host, port)
	}
	return u
}

// schemePort splits a normalised member URL.
func schemePort(u string) (string, string) {
	scheme, hostport, _ := strings.Cut(u, "://")
	_, port, _ := net.SplitHostPort(hostport)
	return scheme, port
}
