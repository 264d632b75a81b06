package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/pullcache/pullcache/admin"
)

// The maintenance page and the actions that change what the cache keeps:
// pin, unpin, delete (soft) and garbage collection, each through admin's
// methods, the code of the admin API's endpoints. Every one is a form
// post with the session's CSRF token, and for admins only.

type maintenanceData struct {
	Stats admin.Stats // Disk, DiskError and Evictions
	Pins  admin.Pins
	// Pinned are the pinned images (at most maxRows).
	Pinned    []admin.Image
	Truncated bool
	// GC is a collection's preview (DryRun) or what one freed.
	GC      *admin.GCReport
	GCError string
	Now     time.Time
}

func (c *Console) maintenanceData() (maintenanceData, error) {
	d := maintenanceData{Stats: c.opts.Admin.Stats(), Pins: c.opts.Admin.Pins(), Now: c.opts.Now()}
	// This page is df: measured now, not the overview's figures of up to
	// ten seconds ago, which predate the pin just made.
	if df, err := c.opts.Admin.DiskUsage(); err == nil {
		d.Stats.Disk, d.Stats.DiskError = df, ""
	}
	list, err := c.opts.Admin.ListMatching("")
	for _, img := range list {
		if !img.Pinned {
			continue
		}
		if len(d.Pinned) == maxRows {
			d.Truncated = true
			break
		}
		d.Pinned = append(d.Pinned, img)
	}
	return d, err
}

func (c *Console) maintenance(w http.ResponseWriter, r *http.Request, v *viewer) {
	d, err := c.maintenanceData()
	if err != nil {
		c.listFailed(w, r, v, err)
		return
	}
	c.show(w, r, v, "maintenance", "maintenance", "Maintenance", d)
}

// collect previews a garbage collection (dry_run=1) or runs one, and
// shows the maintenance page with what it would free or freed: the page
// offers to run it only below a preview.
func (c *Console) collect(w http.ResponseWriter, r *http.Request, v *viewer) {
	rep, gcErr := c.opts.Admin.GC(r.PostFormValue("dry_run") == "1")
	d, err := c.maintenanceData()
	if err != nil {
		c.listFailed(w, r, v, err)
		return
	}
	d.GC = &rep
	if gcErr != nil {
		_, d.GCError = admin.ErrorStatus(gcErr)
	}
	c.show(w, r, v, "maintenance", "maintenance", "Maintenance", d)
}

// formImages are the image names a form sent: image fields, each possibly
// several names, one a line.
func formImages(r *http.Request) []string {
	_ = r.ParseForm()
	var out []string
	for _, f := range r.PostForm["image"] {
		for _, line := range strings.Split(f, "\n") {
			if s := strings.TrimSpace(line); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func (c *Console) pin(w http.ResponseWriter, r *http.Request, v *viewer) {
	c.pinning(w, r, v, c.opts.Admin.Pin, "")
}

func (c *Console) unpin(w http.ResponseWriter, r *http.Request, v *viewer) {
	c.pinning(w, r, v, c.opts.Admin.Unpin,
		" A pattern may pin it, or the configuration: see the pins on the Maintenance page.")
}

// pinning pins or unpins the images the form names, then goes back to
// the page the form was on, which shows the change.
func (c *Console) pinning(w http.ResponseWriter, r *http.Request, v *viewer, fn func([]string) ([]string, error), notFound string) {
	names := formImages(r)
	if len(names) == 0 {
		c.fail(w, r, v, http.StatusBadRequest, "Name at least one image.")
		return
	}
	if _, err := fn(names); err != nil {
		status, msg := admin.ErrorStatus(err)
		if status == http.StatusNotFound {
			msg += "." + notFound
		}
		c.fail(w, r, v, status, msg)
		return
	}
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

type removeData struct {
	Images  []string
	Report  admin.GCReport
	Error   string
	Confirm bool // the preview: ask to confirm
	Next    string
}

// remove deletes images (soft): without confirm=yes it shows what would
// go (a dry run) and asks; with it, it deletes and says what was freed.
func (c *Console) remove(w http.ResponseWriter, r *http.Request, v *viewer) {
	names := formImages(r)
	if len(names) == 0 {
		c.fail(w, r, v, http.StatusBadRequest, "Name at least one image.")
		return
	}
	confirmed := r.PostFormValue("confirm") == "yes"
	rep, err := c.opts.Admin.Remove(names, !confirmed)
	d := removeData{Images: names, Report: rep, Confirm: !confirmed, Next: safeNext(r.PostFormValue("next"))}
	status := http.StatusOK
	if err != nil {
		status, d.Error = admin.ErrorStatus(err)
	}
	title := "Delete images"
	if confirmed {
		title = "Deleted"
	}
	c.showStatus(w, r, v, status, "remove", "browse", title, d)
}
