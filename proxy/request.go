package proxy

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Route is the kind of registry API request.
type Route int

// The routes of the pull API.
const (
	RouteBase     Route = iota // GET /v2/
	RouteManifest              // /v2/<name>/manifests/<reference>
	RouteBlob                  // /v2/<name>/blobs/<digest>
	RouteTags                  // /v2/<name>/tags/list
)

func (r Route) String() string { return [...]string{"base", "manifest", "blob", "tags"}[r] }

// Request is a registry API request parsed once: which registry, which
// repository, what is asked for.
type Request struct {
	Route Route
	// Registry is the upstream registry the request is for: from ns=, from a
	// path prefix, or "" (the default registry applies).
	Registry string
	// Repo is the repository within Registry, normalised (library/ added
	// for one-component Docker Hub names).
	Repo string
	// PathName is the name exactly as the client wrote it in the path; links
	// sent back to the client use it.
	PathName string
	// Tag or Digest: what a manifest request refers to (one is set).
	Tag    string
	Digest v1.Hash
	// NS is the ns= query value, echoed back in OCI-Namespace.
	NS string
	// N and Last page a tag list (N < 0: no limit asked).
	N    int
	Last string
}

// ByDigest reports whether a manifest request names a digest.
func (r Request) ByDigest() bool { return r.Digest.Hex != "" }

// Reference is the tag or digest a manifest request names.
func (r Request) Reference() string {
	if r.ByDigest() {
		return r.Digest.String()
	}
	return r.Tag
}

var (
	// The distribution reference grammar for a path component.
	componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
	tagRE       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	// A registry host: a DNS name or IP with an optional port.
	registryRE = regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?$`)
)

// maxNameLength is the distribution spec's limit for a repository name.
const maxNameLength = 255

// ParseRequest parses a request's method, path and query. It is pure: it
// neither knows which registries are configured nor touches the network.
func ParseRequest(method, path string, query url.Values) (Request, error) {
	if method != http.MethodGet && method != http.MethodHead {
		return Request{}, errUnsupportedMethod(method)
	}
	rest, ok := strings.CutPrefix(path, "/v2")
	if !ok {
		return Request{}, errNoRoute
	}
	if rest == "" || rest == "/" {
		return Request{Route: RouteBase}, nil
	}
	rest = strings.TrimPrefix(rest, "/")
	req, err := splitRoute(rest)
	if err != nil {
		return Request{}, err
	}
	if err := req.setName(query.Get("ns")); err != nil {
		return Request{}, err
	}
	if req.Route == RouteTags {
		if err := req.setPaging(query); err != nil {
			return Request{}, err
		}
	}
	return req, nil
}

// splitRoute finds the route from the end of the path: the name may itself
// contain "manifests" or "blobs" components.
func splitRoute(rest string) (Request, error) {
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return Request{Route: RouteTags, PathName: name, N: -1}, nil
	}
	i := strings.LastIndex(rest, "/")
	if i <= 0 {
		return Request{}, errNoRoute
	}
	head, ref := rest[:i], rest[i+1:]
	j := strings.LastIndex(head, "/")
	if j <= 0 {
		return Request{}, errNoRoute
	}
	name, kind := head[:j], head[j+1:]
	switch {
	case kind == "manifests":
		return manifestRequest(name, ref)
	case kind == "blobs" && ref == "uploads", kind == "uploads":
		return Request{}, errReadOnly
	case kind == "blobs":
		d, err := parseDigest(ref)
		return Request{Route: RouteBlob, PathName: name, Digest: d}, err
	}
	if strings.HasSuffix(head, "/blobs/uploads") {
		return Request{}, errReadOnly
	}
	return Request{}, errNoRoute
}

func manifestRequest(name, ref string) (Request, error) {
	req := Request{Route: RouteManifest, PathName: name}
	if strings.Contains(ref, ":") {
		d, err := parseDigest(ref)
		req.Digest = d
		return req, err
	}
	if !tagRE.MatchString(ref) {
		return req, newError(http.StatusBadRequest, CodeTagInvalid, "invalid tag: want [A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
	}
	req.Tag = ref
	return req, nil
}

func parseDigest(s string) (v1.Hash, error) {
	h, err := v1.NewHash(s)
	if err != nil {
		return v1.Hash{}, newError(http.StatusBadRequest, CodeDigestInvalid, "invalid digest: want sha256:<64 hex digits>").withCause(err)
	}
	return h, nil
}

// setName decides registry and repository: ns= names the registry; else a
// first path component that looks like a host (has a dot or a port, or is
// localhost) does; else the default registry will.
func (r *Request) setName(ns string) error {
	name := r.PathName
	if ns != "" {
		if !registryRE.MatchString(ns) {
			return newError(http.StatusBadRequest, CodeNameInvalid, "invalid ns parameter: want a registry host name")
		}
		r.NS, r.Registry = strings.ToLower(ns), strings.ToLower(ns)
	} else if first, rest, ok := strings.Cut(name, "/"); ok && looksLikeRegistry(first) {
		r.Registry, name = strings.ToLower(first), rest
	}
	if err := validName(name); err != nil {
		return err
	}
	r.Repo = name
	return nil
}

func looksLikeRegistry(s string) bool {
	return (strings.ContainsAny(s, ".:") || s == "localhost") && registryRE.MatchString(s)
}

func validName(name string) error {
	if name == "" || len(name) > maxNameLength {
		return newError(http.StatusBadRequest, CodeNameInvalid, "invalid repository name: empty or longer than 255 characters")
	}
	for _, c := range strings.Split(name, "/") {
		if !componentRE.MatchString(c) {
			return newError(http.StatusBadRequest, CodeNameInvalid, "invalid repository name: components are lower-case letters and digits separated by . _ __ or -")
		}
	}
	return nil
}

// withRegistry completes a request with the registry it resolved to:
// Docker Hub's one-component names are official images under library/.
func (r Request) withRegistry(registry string) Request {
	r.Registry = registry
	if registry == dockerHub && !strings.Contains(r.Repo, "/") {
		r.Repo = "library/" + r.Repo
	}
	return r
}

const dockerHub = "docker.io"

func (r *Request) setPaging(q url.Values) error {
	if v := q.Get("n"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return newError(http.StatusBadRequest, CodePaginationInvalid, "invalid n: want a non-negative integer")
		}
		r.N = n
	}
	r.Last = q.Get("last")
	return nil
}

var errNoRoute = newError(http.StatusNotFound, CodeUnsupported, "no such registry API route")

var errReadOnly = newError(http.StatusMethodNotAllowed, CodeUnsupported, "pullcache is a read-only mirror: push is not supported")

func errUnsupportedMethod(method string) *Error {
	return newError(http.StatusMethodNotAllowed, CodeUnsupported,
		"pullcache is a read-only mirror: "+method+" is not supported").withCause(errors.New("method " + method))
}
