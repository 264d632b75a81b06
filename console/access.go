package console

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/pullcache/pullcache/admin"
)

// What a viewer who is not an admin sees: the images, repositories and
// fills of what the access rules let them pull, the figures of the whole
// cache (counts and bytes name no repository), and nothing of the
// upstreams' health or the recent errors (their messages and paths name
// repositories of every user).

// visible keeps the images v may see.
func visible(v *viewer, images []admin.Image) []admin.Image {
	if v.may == nil {
		return images
	}
	out := make([]admin.Image, 0, len(images))
	for _, img := range images {
		if v.sees(img.Registry, img.Repository) {
			out = append(out, img)
		}
	}
	return out
}

// statsFor is the statistics as v may see them.
func statsFor(v *viewer, st admin.Stats) admin.Stats {
	if v.admin() {
		return st
	}
	fills := make([]admin.FillProgress, 0, len(st.Fills))
	for _, f := range st.Fills {
		// A fill's repository is registry/repository.
		if reg, repo, ok := strings.Cut(f.Repository, "/"); ok && v.sees(reg, repo) {
			fills = append(fills, f)
		}
	}
	st.Fills = fills
	st.Upstreams = []admin.RegistryHealth{}
	st.Members = nil
	st.Errors = st.Errors[:0:0]
	return st
}

// refSeen checks that v may see the image ref (NAME:TAG, NAME@DIGEST or
// NAME) names: the reason to show when not, empty when it may.
func (c *Console) refSeen(v *viewer, ref string) (status int, reason string) {
	n, _, err := admin.ParseRef(ref, c.opts.DefaultRegistry)
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	if !v.sees(n.Registry, n.Repository) {
		return http.StatusForbidden, denied(v, n.Registry+"/"+n.Repository)
	}
	return 0, ""
}

func denied(v *viewer, what string) string {
	return "The access rules do not let " + v.id.Name + " pull " + what + "."
}

// readerAPI is the part of the admin API a viewer who is not an admin
// reaches through /ui/api/ (GETs only: authorize refused the rest), with
// the same filters as the pages: a list holds only what they may see, and
// an endpoint naming an image answers only for one they may see.
func (c *Console) readerAPI(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := r.URL.Query()
	switch strings.TrimPrefix(r.URL.Path, "/ui/api/") {
	case "images":
		list, err := c.opts.Admin.ListMatching(q.Get("q"))
		if err != nil {
			status, msg := admin.ErrorStatus(err)
			apiError(w, status, "UNKNOWN", msg)
			return
		}
		writeJSON(w, visible(v, list))
	case "stats":
		writeJSON(w, statsFor(v, c.opts.Admin.Stats()))
	case "df":
		c.toAdmin(w, r)
	case "image", "history":
		c.toAdminIfSeen(w, r, v, q["image"])
	case "export":
		if q.Get("all") != "" {
			apiError(w, http.StatusForbidden, "DENIED", "only admins may export every image; name the images")
			return
		}
		c.toAdminIfSeen(w, r, v, q["image"])
	default:
		apiError(w, http.StatusForbidden, "DENIED", "only admins may use this endpoint")
	}
}

// toAdminIfSeen passes the request on if v may see every image it names.
func (c *Console) toAdminIfSeen(w http.ResponseWriter, r *http.Request, v *viewer, refs []string) {
	for _, ref := range refs {
		if status, reason := c.refSeen(v, ref); status != 0 {
			code := "DENIED"
			if status == http.StatusBadRequest {
				code = "NAME_INVALID"
			}
			apiError(w, status, code, reason)
			return
		}
	}
	c.toAdmin(w, r)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
