package proxy

import (
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// acceptSet is what a request's Accept headers admit (RFC 9110 12.5.1):
// the media types listed with a weight above zero. Weights are otherwise
// not compared: a mirror serves the one manifest it holds, so it only
// needs to know which types a client names.
type acceptSet struct {
	// anything: no Accept header, or a wildcard (*/* or application/*,
	// which covers every manifest type).
	anything bool
	types    map[string]bool
}

// maxAcceptTypes bounds the media types read from a request's Accept
// headers; real clients send fewer than ten.
const maxAcceptTypes = 64

// parseAccept reads Accept header values. It is pure and never fails: an
// element it cannot read is ignored, as RFC 9110 lets a server do.
func parseAccept(values []string) acceptSet {
	a := acceptSet{types: map[string]bool{}}
	n := 0
	for _, v := range values {
		for _, elem := range strings.Split(v, ",") {
			mt, ok := acceptedType(elem)
			if !ok {
				continue
			}
			if n++; n > maxAcceptTypes {
				return a.orAnything(len(values))
			}
			if mt == "*/*" || mt == "application/*" {
				a.anything = true
				continue
			}
			a.types[mt] = true
		}
	}
	return a.orAnything(len(values))
}

// orAnything: a request without Accept accepts anything.
func (a acceptSet) orAnything(headers int) acceptSet {
	if headers == 0 {
		a.anything = true
	}
	return a
}

// acceptedType is the media type of one Accept element, lower-cased, and
// whether it is accepted: it must look like type/subtype and not carry
// q=0 (or an unreadable weight).
func acceptedType(elem string) (string, bool) {
	mt, params, _ := strings.Cut(elem, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	if typ, sub, ok := strings.Cut(mt, "/"); !ok || typ == "" || sub == "" || strings.ContainsAny(mt, " \t") {
		return "", false
	}
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(q > 0 && q <= 1) { // NaN included
			return "", false
		}
	}
	return mt, true
}

// names reports whether the client listed the media type explicitly.
func (a acceptSet) names(mediaType string) bool { return a.types[mediaType] }

// wantsImageForList reports whether a Docker manifest list should be
// answered with one platform's image: the client accepts Docker schema 2
// images but neither list type, as Docker daemons before 1.10 do. It is
// the one substitution Docker Hub makes.
func (a acceptSet) wantsImageForList() bool {
	return !a.anything && a.names(string(types.DockerManifestSchema2)) &&
		!a.names(string(types.DockerManifestList)) && !a.names(string(types.OCIImageIndex))
}
