package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pullcache/pullcache/upstream"
)

const (
	// SecretHeader carries the shared secret on peer requests.
	SecretHeader = "Pullcache-Peer-Secret"
	// HopHeader marks a request one member sent another: the member that
	// receives it answers from its cache or the upstream and never asks a
	// third one, so a disagreement about owners cannot loop.
	HopHeader = "Pullcache-Peer-Hop"
)

// errRefused is a member's answer that is neither the object nor "not
// found" (its upstream failed, it refused a loop): ask elsewhere.
var errRefused = errors.New("refused by member")

// peerError is a failed request to a member.
type peerError struct {
	member string
	status int // 0 when the member could not be reached
	err    error
}

func (e *peerError) Error() string {
	if e.status != 0 {
		return fmt.Sprintf("member %s answered %d: %v", e.member, e.status, e.err)
	}
	return fmt.Sprintf("member %s: %v", e.member, e.err)
}

func (e *peerError) Unwrap() error { return e.err }

// unreachable says whether err means the member itself failed (so it is
// marked down), not that it answered with an error.
func unreachable(err error) bool {
	var pe *peerError
	return errors.As(err, &pe) && pe.status == 0
}

// outcome names a peer request's result for the metrics.
func outcome(err error) string {
	var pe *peerError
	switch {
	case err == nil:
		return "ok"
	case upstream.KindOf(err) == upstream.NotFound:
		return "not_found"
	case errors.As(err, &pe) && pe.status == 0:
		return "unreachable"
	}
	return "refused"
}

// ask sends one request of the registry API to member m, on behalf of
// registry, with the secret and the hop mark. A member that cannot be
// reached is marked down; a 404 is the upstream's not-found, passed on.
func (n *Node) ask(ctx context.Context, m, method, registry, path string, header http.Header, ok ...int) (*http.Response, error) {
	u := m + path + "?ns=" + url.QueryEscape(registry)
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set(SecretHeader, string(n.opts.Secret))
	req.Header.Set(HopHeader, "1")
	resp, err := n.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			n.markDown(m, err)
		}
		return nil, &peerError{member: m, err: err}
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			return resp, nil
		}
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, &upstream.Error{Registry: registry, Endpoint: m, Op: method + " via member", Kind: upstream.NotFound,
			Err: fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))}
	}
	return nil, &peerError{member: m, status: resp.StatusCode, err: fmt.Errorf("%w: %s", errRefused, strings.TrimSpace(string(msg)))}
}

// blobPath is the registry API path of a blob.
func blobPath(repo, digest string) string { return "/v2/" + repo + "/blobs/" + digest }

// fetchBlob opens a blob at member m from offset on; size is the blob's
// whole size.
func (n *Node) fetchBlob(ctx context.Context, m, registry, repo, digest string, offset int64) (io.ReadCloser, int64, error) {
	n.track(n.opening, digest, 1)
	defer n.track(n.opening, digest, -1)
	var h http.Header
	if offset > 0 {
		h = http.Header{"Range": {"bytes=" + strconv.FormatInt(offset, 10) + "-"}}
	}
	resp, err := n.ask(ctx, m, http.MethodGet, registry, blobPath(repo, digest), h, http.StatusOK, http.StatusPartialContent)
	n.metrics.peerFetches.WithLabelValues(m, "blob", outcome(err)).Inc()
	if err != nil {
		return nil, 0, err
	}
	size := resp.ContentLength
	if resp.StatusCode == http.StatusPartialContent {
		size = rangeTotal(resp.Header.Get("Content-Range"))
	} else if offset > 0 {
		// A whole blob for a range: skip what the caller has.
		if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
			resp.Body.Close()
			return nil, 0, &peerError{member: m, err: err}
		}
	}
	return resp.Body, size, nil
}

// rangeTotal is the whole size in a Content-Range ("bytes a-b/total").
func rangeTotal(cr string) int64 {
	_, total, ok := strings.Cut(cr, "/")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(total, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func (n *Node) track(set map[string]int, digest string, d int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	set[digest] += d
	if set[digest] <= 0 {
		delete(set, digest)
	}
}

func (n *Node) tracked(set map[string]int, digest string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return set[digest] > 0
}

func (n *Node) countFetch(d int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fetches += d
}
