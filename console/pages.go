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
	// Admin sees the upstreams' health and the recent errors.
	Admin bool
}

func (c *Console) overviewData(r *http.Request, v *viewer) overviewData {
	st := statsFor(v, c.opts.Admin.Stats())
	span, points := "hour", st.Minutes
	if r.URL.Query().Get("span") == "day" {
		span, points = "day", st.Hours
	}
	return overviewData{Stats: st, Charts: charts(points, span), Now: st.At, Admin: v.admin()}
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, v *viewer) {
	c.show(w, r, v, "overview", "overview", "Overview", c.overviewData(r, v))
}

// live is the overview's changing part alone, which the page's script
// fetches every few seconds.
func (c *Console) live(w http.ResponseWriter, r *http.Request, v *viewer) {
	t := c.pages["overview"]
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := t.ExecuteTemplate(w, "live", page{Data: c.overviewData(r, v)}); err != nil {
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
	Registry, Repository string
	Tags                 int
}

func (r repoRow) Name() string { return r.Registry + "/" + r.Repository }

type browseData struct {
	Query      string
	Registry   string
	Registries []registryRow
	Repos      []repoRow
	Matches    []admin.Image
	Truncated  bool
	Now        time.Time
}

// images is admin's list of the images matching q that v may see.
func (c *Console) images(v *viewer, q string) ([]admin.Image, error) {
	list, err := c.opts.Admin.ListMatching(q)
	return visible(v, list), err
}

func (c *Console) listFailed(w http.ResponseWriter, r *http.Request, v *viewer, err error) {
	_, msg := admin.ErrorStatus(err)
	c.fail(w, r, v, http.StatusInternalServerError, "The image list could not be read: "+msg)
}

// browse lists registries and repositories, or, with q, the images whose
// name matches q as GET /admin/images?q= does (part of a name, or a
// glob).
func (c *Console) browse(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := r.URL.Query()
	d := browseData{Query: strings.TrimSpace(q.Get("q")), Registry: q.Get("registry"), Now: c.opts.Now()}
	images, err := c.images(v, d.Query)
	if err != nil {
		c.listFailed(w, r, v, err)
		return
	}
	if d.Query != "" {
		d.Truncated = len(images) > maxRows
		d.Matches = images[:min(len(images), maxRows)]
		c.show(w, r, v, "browse", "browse", "Browse", d)
		return
	}
	d.Registries, d.Repos = group(images, d.Registry)
	d.Truncated = len(d.Repos) > maxRows
	d.Repos = d.Repos[:min(len(d.Repos), maxRows)]
	c.show(w, r, v, "browse", "browse", "Browse", d)
}

// group counts images by registry, and by repository within registry
// (every registry when empty).
func group(images []admin.Image, registry string) ([]registryRow, []repoRow) {
	regs := map[string]*registryRow{}
	repos := map[string]*repoRow{}
	for _, img := range images {
		if img.Registry == "" {
			continue
		}
		rr := regs[img.Registry]
		if rr == nil {
			rr = &registryRow{Name: img.Registry}
			regs[img.Registry] = rr
		}
		rr.Tags++
		if registry != "" && img.Registry != registry {
			continue
		}
		key := img.Registry + "/" + img.Repository
		p := repos[key]
		if p == nil {
			p = &repoRow{Registry: img.Registry, Repository: img.Repository}
			repos[key] = p
			rr.Repositories++
		}
		p.Tags++
	}
	var outRegs []registryRow
	for _, rr := range regs {
		outRegs = append(outRegs, *rr)
	}
	sort.Slice(outRegs, func(i, j int) bool { return outRegs[i].Name < outRegs[j].Name })
	var outRepos []repoRow
	for _, p := range repos {
		outRepos = append(outRepos, *p)
	}
	sort.Slice(outRepos, func(i, j int) bool { return outRepos[i].Name() < outRepos[j].Name() })
	return outRegs, outRepos
}

type repoData struct {
	Registry, Repository string
	Tags                 []admin.Image
	Truncated            bool
	Now                  time.Time
	// Next is where the page's actions come back to.
	Next string
}

func (c *Console) repo(w http.ResponseWriter, r *http.Request, v *viewer) {
	want := r.URL.Query().Get("name")
	reg, repo, ok := strings.Cut(want, "/")
	if !ok {
		c.fail(w, r, v, http.StatusBadRequest, "Name a repository: registry/repository.")
		return
	}
	if !v.sees(reg, repo) {
		c.fail(w, r, v, http.StatusForbidden, denied(v, want))
		return
	}
	q := want
	if strings.ContainsAny(q, "*?[") {
		q = "" // not a pattern: compare below
	}
	images, err := c.images(v, q)
	if err != nil {
		c.listFailed(w, r, v, err)
		return
	}
	d := repoData{Registry: reg, Repository: repo, Now: c.opts.Now(), Next: r.URL.RequestURI()}
	for _, img := range images {
		if img.Registry != reg || img.Repository != repo {
			continue
		}
		if len(d.Tags) == maxRows {
			d.Truncated = true
			break
		}
		d.Tags = append(d.Tags, img)
	}
	if len(d.Tags) == 0 {
		c.fail(w, r, v, http.StatusNotFound, "The cache holds no tag of "+want+".")
		return
	}
	c.show(w, r, v, "repo", "browse", want, d)
}

type imageData struct {
	Ref  string
	Info admin.ImageDetail
	// Listed is the image's entry in the list (unique size); nil for a
	// platform of an index, which the list does not name.
	Listed  *admin.Image
	History []admin.TagHistory
	Pulls   []pullCommand
	Now     time.Time
	Next    string
}

func (c *Console) image(w http.ResponseWriter, r *http.Request, v *viewer) {
	ref := r.URL.Query().Get("ref")
	if status, reason := c.refSeen(v, ref); status != 0 {
		c.fail(w, r, v, status, reason)
		return
	}
	info, err := c.opts.Admin.Describe(ref, true)
	if err != nil && info.Digest == "" {
		status, msg := admin.ErrorStatus(err)
		if status == http.StatusNotFound {
			msg = "The cache does not hold " + ref + "."
		}
		c.fail(w, r, v, status, msg)
		return
	}
	d := imageData{Ref: ref, Info: info, Now: c.opts.Now(), Pulls: pullCommands(r, info, c.opts.DefaultRegistry), Next: r.URL.RequestURI()}
	d.Listed = c.listed(info)
	if info.Tag != "" {
		// A tag that never moved has one entry; an error (an index that
		// cannot be read) leaves the section out, the page still shows.
		d.History, _ = c.opts.Admin.History(info.Registry + "/" + info.Repository + ":" + info.Tag)
	}
	c.show(w, r, v, "image", "browse", ref, d)
}

// listed finds the image's entry in admin's list, for its unique size.
func (c *Console) listed(info admin.ImageDetail) *admin.Image {
	name := info.Registry + "/" + info.Repository
	if info.Tag != "" {
		name += ":" + info.Tag
	} else {
		name += "@" + info.Digest
	}
	list, err := c.opts.Admin.ListMatching(name)
	if err != nil {
		return nil
	}
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

type uploadData struct {
	Limit           int64
	DefaultRegistry string
}

func (c *Console) upload(w http.ResponseWriter, r *http.Request, v *viewer) {
	c.show(w, r, v, "upload", "upload", "Upload", uploadData{Limit: c.opts.UploadLimit, DefaultRegistry: c.opts.DefaultRegistry})
}

func (c *Console) warmPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	c.show(w, r, v, "warm", "warm", "Warm", r.URL.Query().Get("image"))
}

func (c *Console) exportPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	images, err := c.images(v, "")
	if err != nil {
		c.listFailed(w, r, v, err)
		return
	}
	tagged := images[:0:0]
	for _, img := range images {
		if img.Tag != "" {
			tagged = append(tagged, img)
		}
	}
	c.show(w, r, v, "export", "export", "Export", tagged)
}
