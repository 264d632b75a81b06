package console

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/pullcache/pullcache/admin"
)

// overviewData is the overview page: every figure from admin's Stats, the
// same code GET /admin/stats answers with.
type overviewData struct {
	Stats  admin.Stats
	Charts chartSet
	Now    time.Time
}

func (c *Console) overviewData(r *http.Request) overviewData {
	st := c.opts.Admin.Stats()
	span, points := "hour", st.Minutes
	if r.URL.Query().Get("span") == "day" {
		span, points = "day", st.Hours
	}
	return overviewData{Stats: st, Charts: charts(points, span), Now: st.At}
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, sess *session) {
	c.show(w, r, sess, "overview", "overview", "Overview", c.overviewData(r))
}

// live is the overview's changing part alone, which the page's script
// fetches every few seconds.
func (c *Console) live(w http.ResponseWriter, r *http.Request, sess *session) {
	t := c.pages["overview"]
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := t.ExecuteTemplate(w, "live", page{Data: c.overviewData(r)}); err != nil {
		c.opts.Logger.Error("console live", "err", err)
	}
}

// maxRows bounds a table: beyond it, the page says to search.
const maxRows = 500

type registryRow struct {
	Name         string
	Repositories int
	Tags         int
}

type repoRow struct {
	Name imageName // Tag unused
	Tags int
}

type browseData struct {
	Query      string
	Registry   string
	Registries []registryRow
	Repos      []repoRow
	Matches    []imageName
	Truncated  bool
}

func (c *Console) browse(w http.ResponseWriter, r *http.Request, sess *session) {
	images, err := c.opts.Admin.Images()
	if err != nil {
		c.fail(w, r, sess, http.StatusInternalServerError, "The image list could not be read: "+err.Error())
		return
	}
	q := r.URL.Query()
	d := browseData{Query: strings.TrimSpace(q.Get("q")), Registry: q.Get("registry")}
	regs := map[string]*registryRow{}
	repos := map[string]*repoRow{}
	for _, img := range images {
		n, ok := splitName(img.Name)
		if !ok {
			continue
		}
		if d.Query != "" && strings.Contains(strings.ToLower(n.Ref()), strings.ToLower(d.Query)) {
			d.Matches = append(d.Matches, n)
		}
		rr := regs[n.Registry]
		if rr == nil {
			rr = &registryRow{Name: n.Registry}
			regs[n.Registry] = rr
		}
		rr.Tags++
		if d.Registry != "" && n.Registry != d.Registry {
			continue
		}
		p := repos[n.Repo()]
		if p == nil {
			p = &repoRow{Name: imageName{Registry: n.Registry, Repository: n.Repository}}
			repos[n.Repo()] = p
			rr.Repositories++
		}
		p.Tags++
	}
	for _, rr := range regs {
		d.Registries = append(d.Registries, *rr)
	}
	sort.Slice(d.Registries, func(i, j int) bool { return d.Registries[i].Name < d.Registries[j].Name })
	if d.Query == "" {
		for _, p := range repos {
			d.Repos = append(d.Repos, *p)
		}
		sort.Slice(d.Repos, func(i, j int) bool { return d.Repos[i].Name.Repo() < d.Repos[j].Name.Repo() })
	}
	d.Truncated = len(d.Repos) > maxRows || len(d.Matches) > maxRows
	d.Repos = d.Repos[:min(len(d.Repos), maxRows)]
	d.Matches = d.Matches[:min(len(d.Matches), maxRows)]
	c.show(w, r, sess, "browse", "browse", "Browse", d)
}

type tagRow struct {
	Name imageName
	Info admin.ImageInfo
	Err  string
}

type repoData struct {
	Repo      imageName
	Tags      []tagRow
	Truncated bool
	Now       time.Time
}

func (c *Console) repo(w http.ResponseWriter, r *http.Request, sess *session) {
	want := r.URL.Query().Get("name")
	images, err := c.opts.Admin.Images()
	if err != nil {
		c.fail(w, r, sess, http.StatusInternalServerError, "The image list could not be read: "+err.Error())
		return
	}
	d := repoData{Now: c.opts.Now()}
	for _, img := range images {
		n, ok := splitName(img.Name)
		if !ok || n.Repo() != want {
			continue
		}
		if len(d.Tags) == maxRows {
			d.Truncated = true
			break
		}
		d.Repo = imageName{Registry: n.Registry, Repository: n.Repository}
		row := tagRow{Name: n}
		if row.Info, err = c.opts.Admin.Describe(n.Ref(), true); err != nil {
			row.Err = err.Error()
		}
		d.Tags = append(d.Tags, row)
	}
	if len(d.Tags) == 0 {
		c.fail(w, r, sess, http.StatusNotFound, "The cache holds no tag of "+want+".")
		return
	}
	c.show(w, r, sess, "repo", "browse", d.Repo.Repo(), d)
}

type imageData struct {
	Ref   string
	Info  admin.ImageInfo
	Pulls []pullCommand
	Now   time.Time
}

func (c *Console) image(w http.ResponseWriter, r *http.Request, sess *session) {
	ref := r.URL.Query().Get("ref")
	info, err := c.opts.Admin.Describe(ref, true)
	if err != nil && info.Digest == "" {
		status, msg := admin.ErrorStatus(err)
		if status == http.StatusNotFound {
			msg = "The cache does not hold " + ref + "."
		}
		c.fail(w, r, sess, status, msg)
		return
	}
	d := imageData{Ref: ref, Info: info, Now: c.opts.Now(), Pulls: pullCommands(r, info, c.opts.DefaultRegistry)}
	c.show(w, r, sess, "image", "browse", ref, d)
}

type uploadData struct {
	Limit           int64
	DefaultRegistry string
}

func (c *Console) upload(w http.ResponseWriter, r *http.Request, sess *session) {
	c.show(w, r, sess, "upload", "upload", "Upload", uploadData{Limit: c.opts.UploadLimit, DefaultRegistry: c.opts.DefaultRegistry})
}

func (c *Console) warmPage(w http.ResponseWriter, r *http.Request, sess *session) {
	c.show(w, r, sess, "warm", "warm", "Warm", r.URL.Query().Get("image"))
}

func (c *Console) exportPage(w http.ResponseWriter, r *http.Request, sess *session) {
	images, err := c.opts.Admin.Images()
	if err != nil {
		c.fail(w, r, sess, http.StatusInternalServerError, "The image list could not be read: "+err.Error())
		return
	}
	c.show(w, r, sess, "export", "export", "Export", images)
}

// maintenance lists the actions that wait for the store's lifecycle:
// pin, delete, collect garbage, disk use by category.
//
// TODO(lifecycle): POST /admin/pin, /admin/unpin, /admin/rm,
// /admin/gc?dry_run=1 and GET /admin/df, /admin/history; each becomes a
// form here (confirmation for the destructive ones, refused to
// non-admins by authorize) once the admin API answers them.
func (c *Console) maintenance(w http.ResponseWriter, r *http.Request, sess *session) {
	c.show(w, r, sess, "maintenance", "maintenance", "Maintenance", nil)
}
