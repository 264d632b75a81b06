package console

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/pullcache/pullcache/admin"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the console.
type Options struct {
	// Admin is the admin API the console shows and acts through; required.
	Admin *admin.Admin
	// Logins checks sign-ins. Default: none, and the console only says
	// how to turn them on (set admin_token).
	Logins Logins
	// DefaultRegistry is the registry of names that carry none, for pull
	// commands. Default "docker.io".
	DefaultRegistry string
	// UploadLimit is the largest archive the upload page sends, in bytes
	// (the admin API enforces it). Default 0: no limit shown.
	UploadLimit int64
	// Logger receives refused logins and failed pages. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Console serves the web console under /ui/.
type Console struct {
	opts     Options
	pages    map[string]*template.Template
	sessions *sessions
	api      http.Handler
	mux      *http.ServeMux
}

// New returns the console.
func New(opts Options) (*Console, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DefaultRegistry == "" {
		opts.DefaultRegistry = "docker.io"
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{opts: opts, pages: pages, sessions: newSessions(opts.Now), api: opts.Admin.Handler()}
	c.mux = c.routes()
	return c, nil
}

// handler is a page or an action: the request and who sent it.
type handler func(http.ResponseWriter, *http.Request, *viewer)

func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /ui/login", c.loginPage)
	mux.HandleFunc("POST /ui/login", c.login)
	mux.Handle("POST /ui/logout", c.action(c.logout))
	mux.Handle("GET /ui/{$}", c.page(c.overview))
	mux.Handle("GET /ui/live", c.page(c.live))
	mux.Handle("GET /ui/browse", c.page(c.browse))
	mux.Handle("GET /ui/repo", c.page(c.repo))
	mux.Handle("GET /ui/image", c.page(c.image))
	mux.Handle("GET /ui/export", c.page(c.exportPage))
	mux.Handle("GET /ui/upload", c.page(c.adminOnly("upload images", c.upload)))
	mux.Handle("GET /ui/warm", c.page(c.adminOnly("warm the cache", c.warmPage)))
	mux.Handle("GET /ui/maintenance", c.page(c.adminOnly("maintain the cache", c.maintenance)))
	mux.Handle("POST /ui/pin", c.action(c.adminOnly("pin images", c.pin)))
	mux.Handle("POST /ui/unpin", c.action(c.adminOnly("unpin images", c.unpin)))
	mux.Handle("POST /ui/rm", c.action(c.adminOnly("delete images", c.remove)))
	mux.Handle("POST /ui/gc", c.action(c.adminOnly("collect garbage", c.collect)))
	mux.Handle("/ui/api/", c.apiHandler())
	mux.Handle("/ui/", c.page(func(w http.ResponseWriter, r *http.Request, v *viewer) {
		c.fail(w, r, v, http.StatusNotFound, "No such page.")
	}))
	return mux
}

// ServeHTTP answers everything under /ui/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Everything the pages need is served from here: nothing else may run
	// or be fetched, and no other site may frame the console.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "+
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if c.opts.Logins == nil && !strings.HasPrefix(r.URL.Path, "/ui/static/") {
		c.render(w, r, http.StatusServiceUnavailable, "off", page{Title: "Console off"})
		return
	}
	c.mux.ServeHTTP(w, r)
}

// page wraps a page handler: no session, to the login form.
func (c *Console) page(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := c.viewerOf(r)
		if !ok {
			http.Redirect(w, r, "/ui/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, v)
	})
}

// action wraps a form post: a session and its CSRF token are required.
func (c *Console) action(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := c.viewerOf(r)
		if !ok {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		if !checkCSRF(r, v.session) {
			c.fail(w, r, v, http.StatusForbidden, "The form expired or came from another site; reload the page and try again.")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, v)
	})
}

// adminOnly refuses h to viewers who are not admins, saying what they
// tried to do.
func (c *Console) adminOnly(what string, h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, v *viewer) {
		if !v.admin() {
			c.fail(w, r, v, http.StatusForbidden, "Only admins may "+what+"; you are signed in as "+v.id.Name+".")
			return
		}
		h(w, r, v)
	}
}

// apiHandler is the admin API under /ui/api/, behind the console's
// session: the pages' scripts read and act through the same endpoints as
// every other client. Admins reach all of it; other viewers only what
// they may see (readerAPI).
func (c *Console) apiHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := c.viewerOf(r)
		switch {
		case !ok:
			apiError(w, http.StatusUnauthorized, "UNAUTHORIZED", "sign in to the console first")
			return
		case r.Method != http.MethodGet && r.Method != http.MethodHead && !checkCSRF(r, v.session):
			apiError(w, http.StatusForbidden, "DENIED", "missing or wrong CSRF token; reload the page")
			return
		case !authorize(v.id, r):
			apiError(w, http.StatusForbidden, "DENIED", "only admins may change the cache")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if !v.admin() {
			c.readerAPI(w, r, v)
			return
		}
		c.toAdmin(w, r)
	})
}

// toAdmin passes a request under /ui/api/ to the admin API.
func (c *Console) toAdmin(w http.ResponseWriter, r *http.Request) {
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/admin/" + strings.TrimPrefix(r.URL.Path, "/ui/api/")
	r2.URL.RawPath = ""
	c.api.ServeHTTP(w, r2)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := jsonMarshal(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
	_, _ = w.Write(b)
}

// page is what every template gets.
type page struct {
	Title string
	Nav   string
	// Session data: who, whether an admin, and the CSRF token for scripts
	// and forms.
	User  string
	Admin bool
	CSRF  string
	Data  any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no template "+name, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.opts.Logger.Error("console page", "page", name, "path", r.URL.Path, "err", err)
		http.Error(w, "the page could not be drawn; see the server log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// show renders a page for a viewer.
func (c *Console) show(w http.ResponseWriter, r *http.Request, v *viewer, name, nav, title string, data any) {
	c.showStatus(w, r, v, http.StatusOK, name, nav, title, data)
}

func (c *Console) showStatus(w http.ResponseWriter, r *http.Request, v *viewer, status int, name, nav, title string, data any) {
	c.render(w, r, status, name, page{Title: title, Nav: nav, User: v.id.Name, Admin: v.admin(), CSRF: v.csrf, Data: data})
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, v *viewer, status int, msg string) {
	c.showStatus(w, r, v, status, "error", "", "Error", msg)
}

func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}
