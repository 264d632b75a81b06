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
	RouteBase      Route = iota // GET /v2/
	RouteManifest               // /v2/<name>/manifests/<reference>
	RouteBlob                   // /v2/<name>/blobs/<digest>
	RouteTags                   // /v2/<name>/tags/list
	RouteReferrers              // /v2/<name>/referrers/<digest>
	RouteCatalog                // /v2/_catalog (or /v2/<registry>/_catalog)
)

func (r Route) String() string {
	return [...]string{"base", "manifest", "blob", "tags", "referrers", "catalog"}[r]
}

// Request is a registry API request parsed once: which registry, which
// repository, what is asked for.
type Request struct {
	Route Route
	// Registry is the upstream registry the request is for: from ns=, from a
	// path prefix, or "" (the default registry applies).
	Registry string
	// Repo is the repository within Registry, normalised (library/ added
	// for one-component Docker Hub names). Empty for the catalog.
	Repo string
	// PathName is the name exactly as the client wrote it in the path; links
	// sent back to the client use it. For the catalog it is the registry
	// prefix the client wrote, if any.
	PathName string
	// Tag or Digest: what a manifest request refers to (one is set); the
	// blob's digest; the subject of a referrers request.
	Tag    string
	Digest v1.Hash
	// NS is the ns= query value, echoed back in OCI-Namespace.
	NS string
	// N and Last page a tag list or the catalog (N < 0: no limit asked).
	N    int
	Last string
	// ArtifactTypes filter a referrers list (artifactType=, repeatable).
	ArtifactTypes []string
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
//
// The name is checked before the reference, so a malformed repository name
// is NAME_INVALID whatever follows it. A tag or digest that cannot exist
// in a manifest or blob path is answered as unknown (404 MANIFEST_UNKNOWN
// or BLOB_UNKNOWN), as the distribution-spec conformance suite expects of
// a reference that does not exist; a referrers request with a malformed
// digest is 400, which distribution-spec "Listing Referrers" requires.
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
	if req, ok, err := catalogRequest(rest, query); ok {
		return req, err
	}
	req, ref, err := splitRoute(rest)
	if err != nil {
		return Request{}, err
	}
	if err := req.setName(query.Get("ns")); err != nil {
		return Request{}, err
	}
	if err := req.setReference(ref, query); err != nil {
		return Request{}, err
	}
	return req, nil
}

// catalogRequest parses /v2/_catalog, or /v2/<registry>/_catalog (the
// registry as a path prefix, as podman mirror locations carry it).
func catalogRequest(rest string, query url.Values) (Request, bool, error) {
	prefix, ok := strings.CutSuffix(rest, "_catalog")
	if !ok || (prefix != "" && !strings.HasSuffix(prefix, "/")) {
		return Request{}, false, nil
	}
	req := Request{Route: RouteCatalog, N: -1}
	if prefix = strings.TrimSuffix(prefix, "/"); prefix != "" {
		if !looksLikeRegistry(prefix) {
			return Request{}, true, errNoRoute
		}
		req.Registry, req.PathName = strings.ToLower(prefix), prefix
	}
	if ns := query.Get("ns"); ns != "" {
		if !registryRE.MatchString(ns) {
			return Request{}, true, errBadNS
		}
		req.NS, req.Registry = strings.ToLower(ns), strings.ToLower(ns)
	}
	return req, true, req.setPaging(query)
}

// splitRoute finds the route from the end of the path (the name may
// itself contain "manifests" or "blobs" components) and returns the
// reference that follows the route's keyword, unparsed.
func splitRoute(rest string) (Request, string, error) {
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return Request{Route: RouteTags, PathName: name, N: -1}, "", nil
	}
	i := strings.LastIndex(rest, "/")
	if i <= 0 {
		return Request{}, "", errNoRoute
	}
	head, ref := rest[:i], rest[i+1:]
	j := strings.LastIndex(head, "/")
	if j <= 0 {
		return Request{}, "", errNoRoute
	}
	name, kind := head[:j], head[j+1:]
	switch {
	case kind == "manifests":
		return Request{Route: RouteManifest, PathName: name}, ref, nil
	case kind == "blobs" && ref == "uploads", kind == "uploads":
		return Request{}, "", errReadOnly
	case kind == "blobs":
		return Request{Route: RouteBlob, PathName: name}, ref, nil
	case kind == "referrers":
		return Request{Route: RouteReferrers, PathName: name}, ref, nil
	}
	if strings.HasSuffix(head, "/blobs/uploads") {
		return Request{}, "", errReadOnly
	}
	return Request{}, "", errNoRoute
}

// setReference parses what follows the route's keyword, and the query
// parameters of the route.
func (r *Request) setReference(ref string, query url.Values) error {
	switch r.Route {
	case RouteTags:
		return r.setPaging(query)
	case RouteManifest:
		if d, err := v1.NewHash(ref); err == nil {
			r.Digest = d
			return nil
		}
		if strings.Contains(ref, ":") || !tagRE.MatchString(ref) {
			return newError(http.StatusNotFound, CodeManifestUnknown, "manifest unknown: the reference is neither a valid tag nor a valid digest")
		}
		r.Tag = ref
	case RouteBlob:
		d, err := v1.NewHash(ref)
		if err != nil {
			return newError(http.StatusNotFound, CodeBlobUnknown, "blob unknown: the reference is not a valid digest").withCause(err)
		}
		r.Digest = d
	case RouteReferrers:
		d, err := v1.NewHash(ref)
		if err != nil {
			return newError(http.StatusBadRequest, CodeDigestInvalid, "invalid digest: want sha256:<64 hex digits>").withCause(err)
		}
		r.Digest = d
		r.ArtifactTypes = query["artifactType"]
	}
	return nil
}

// setName decides registry and repository: ns= names the registry; else a
// first path component that looks like a host (has a dot or a port, or is
// localhost) does; else the default registry will.
func (r *Request) setName(ns string) error {
	name := r.PathName
	if ns != "" {
		if !registryRE.MatchString(ns) {
			return errBadNS
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
	if registry == dockerHub && r.Repo != "" && !strings.Contains(r.Repo, "/") {
		r.Repo = "library/" + r.Repo
	}
	return r
}

const dockerHub = "docker.io"

// setPaging reads n and last, as tags/list and _catalog take them.
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

var errBadNS = newError(http.StatusBadRequest, CodeNameInvalid, "invalid ns parameter: want a registry host name")

var errNoRoute = newError(http.StatusNotFound, CodeUnsupported, "no such registry API route")

var errReadOnly = newError(http.StatusMethodNotAllowed, CodeUnsupported, "pullcache is a read-only mirror: push is not supported")

func errUnsupportedMethod(method string) *Error {
	return newError(http.StatusMethodNotAllowed, CodeUnsupported,
		"pullcache is a read-only mirror: "+method+" is not supported").withCause(errors.New("method " + method))
}
