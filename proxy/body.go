package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/pullcache/pullcache/upstream"
)

// writeJSON sends v as the JSON body of a list answer (tags, referrers,
// catalog), with its Content-Length; a HEAD gets the headers only.
func writeJSON(w *recorder, r *http.Request, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(body)
	return err
}

// servesStale reports whether an upstream failure lets a cached copy be
// served instead, with a Warning: the upstream is unreachable, silent,
// rate-limiting or broken, which says nothing of whether the copy is still
// right. A 404, a refusal or the client leaving do not.
func servesStale(err error) bool {
	switch upstream.KindOf(err) {
	case upstream.Unavailable, upstream.TooManyRequests, upstream.Invalid:
		return true
	}
	return false
}
