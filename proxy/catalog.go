package proxy

import (
	"net/http"
	"net/url"
	"strconv"
)

// serveCatalog answers GET /v2/_catalog: the repositories of the request's
// registry (ns=, a path prefix, the Host, or the default registry, as for
// every request) that this mirror has content for, in lexical order,
// paged with n and last, with a Link to the next page. It is answered from
// the index alone: an upstream's own catalog lists what it holds, not
// what the mirror can serve.
func (s *Server) serveCatalog(w *recorder, r *http.Request, req Request) error {
	names, err := s.store.Repositories(req.Registry)
	if err != nil {
		return err
	}
	page, more := pageTags(names, req.Last, req.N)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if more {
		h.Set("Link", nextCatalogLink(req, page[len(page)-1]))
	}
	return writeJSON(w, r, struct {
		Repositories []string `json:"repositories"`
	}{page})
}

func nextCatalogLink(req Request, last string) string {
	q := url.Values{}
	q.Set("n", strconv.Itoa(req.N))
	q.Set("last", last)
	if req.NS != "" {
		q.Set("ns", req.NS)
	}
	path := "/v2/_catalog"
	if req.PathName != "" {
		path = "/v2/" + req.PathName + "/_catalog"
	}
	u := url.URL{Path: path, RawQuery: q.Encode()}
	return "<" + u.String() + `>; rel="next"`
}
