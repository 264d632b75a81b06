package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/upstream"
)

// serveTags answers a tag list from the whole list fetched from upstream
// (kept for the tag TTL), paging it here with n and last, so paging is
// right whatever the upstream supports. With the upstream unreachable the
// last known list is served.
func (s *Server) serveTags(w *recorder, r *http.Request, up Upstream, req Request) error {
	repo := cache.Repo{Registry: req.Registry, Name: req.Repo}
	tags, src, err := s.tagList(r.Context(), up, repo)
	if err != nil {
		return err
	}
	w.setSource(src)
	page, more := pageTags(tags, req.Last, req.N)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if src == fromStale {
		h.Set("Warning", `110 pullcache "Response is stale: the upstream registry is unreachable"`)
	}
	if more {
		h.Set("Link", nextTagsLink(r, req, page[len(page)-1]))
	}
	return writeJSON(w, r, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{req.PathName, page})
}

func (s *Server) tagList(ctx context.Context, up Upstream, repo cache.Repo) ([]string, source, error) {
	cached, fetched, cerr := s.store.TagList(repo)
	if cerr == nil && s.opts.Now().Sub(fetched) < s.opts.TagTTL {
		return cached, fromCache, nil
	}
	if errors.Is(cerr, cache.ErrNotFound) {
		// No list fetched yet: the tags the store resolved or imported are
		// the last known list.
		cached, cerr = s.knownTags(repo)
	}
	if s.opts.Offline && cerr == nil {
		return cached, fromCache, nil
	}
	// With a list to fall back on, the client waits no longer than a revalidation.
	ctx, cancel := s.waitFor(ctx, cerr == nil)
	defer cancel()
	key := negativeKey("tags", repo, "")
	if err := s.negative.lookup(key); err != nil {
		return nil, "", newError(http.StatusNotFound, CodeNameUnknown, "repository name not known to registry").withCause(err)
	}
	v, err := s.flight(ctx, "tags "+repo.String(), func(ctx context.Context) (any, error) {
		if err := s.negative.lookup(key); err != nil {
			return nil, err
		}
		tags, err := up.Tags(ctx, repo.Name)
		if err != nil {
			s.negative.remember(key, err)
			return nil, err
		}
		tags = slices.Clone(tags)
		sort.Strings(tags)
		tags = slices.Compact(tags)
		return tags, s.store.PutTagList(repo, tags, s.opts.Now())
	})
	if err == nil {
		return v.([]string), fromUpstream, nil
	}
	switch {
	case cerr == nil && servesStale(err):
		s.log.Warn("serving stale tag list", "repo", repo.String(), "err", err)
		return cached, fromStale, nil
	case upstream.KindOf(err) == upstream.NotFound:
		return nil, "", newError(http.StatusNotFound, CodeNameUnknown, "repository name not known to registry").withCause(err)
	case errors.Is(cerr, cache.ErrNotFound) || cerr == nil:
		return nil, "", err
	}
	return nil, "", errors.Join(err, cerr)
}

func (s *Server) knownTags(repo cache.Repo) ([]string, error) {
	var tags []string
	err := s.store.RepoTags(repo, func(tag string) { tags = append(tags, tag) })
	if err == nil && len(tags) == 0 {
		err = cache.ErrNotFound
	}
	return tags, err
}

// pageTags returns the names (tags, or the catalog's repositories) after
// last (lexically), at most n of them (n < 0: all), and whether more
// follow.
func pageTags(tags []string, last string, n int) ([]string, bool) {
	start := 0
	if last != "" {
		start = sort.SearchStrings(tags, last)
		if start < len(tags) && tags[start] == last {
			start++
		}
	}
	rest := append([]string{}, tags[start:]...)
	if n < 0 || n >= len(rest) {
		return rest, false
	}
	return rest[:n], n > 0
}

func nextTagsLink(r *http.Request, req Request, last string) string {
	q := url.Values{}
	q.Set("n", strconv.Itoa(req.N))
	q.Set("last", last)
	if req.NS != "" {
		q.Set("ns", req.NS)
	}
	u := url.URL{Path: "/v2/" + req.PathName + "/tags/list", RawQuery: q.Encode()}
	return "<" + u.String() + `>; rel="next"`
}
