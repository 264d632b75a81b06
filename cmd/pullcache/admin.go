package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/auth"
	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/config"
)

// adminSocket is the running server's admin API, in the data directory.
func adminSocket(data string) string { return filepath.Join(data, "admin.sock") }

// importTemp is where archives are unpacked while they are checked: not the
// store's tmp/, whose stale files the store removes one by one at start.
func importTemp(data string) string { return filepath.Join(data, "import-tmp") }

// resetImportTemp removes what a killed import left and recreates the
// directory. Call it only while holding the store (its lock means no
// other process is importing).
func resetImportTemp(data string) error {
	dir := importTemp(data)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear %s: %w", dir, err)
	}
	return os.MkdirAll(dir, 0o700)
}

// adminHandler is the admin API of a serving process.
func adminHandler(cfg config.Config, store *cache.Store, mirror string, log *slog.Logger, token string, limit int64, obs *observers) http.Handler {
	return admin.Handler(adminOptions(cfg, store, mirror, log, token, limit, obs))
}

func adminOptions(cfg config.Config, store *cache.Store, mirror string, log *slog.Logger, token string, limit int64, obs *observers) admin.Options {
	opts := admin.Options{
		Store:           store,
		DefaultRegistry: cfg.DefaultRegistry,
		TempDir:         importTemp(cfg.Data),
		UploadLimit:     limit,
		Token:           token,
		Mirror:          mirror,
		// Warm pulls through the admin socket's registry API, which needs
		// no login and speaks plain HTTP whatever the main listener does.
		MirrorClient: &http.Client{Transport: newSocketTransport(adminSocket(cfg.Data))},
		Logger:       log,
		Offline:      cfg.Offline,
	}
	if obs != nil {
		opts.Stats, opts.Upstreams, opts.Members = obs.stats, obs.health, obs.members
	}
	return opts
}

// startAdmin serves the admin API on <data>/admin.sock (mode 0600: only the
// owner of the data directory may use it) until the returned stop is
// called, and the registry API too, without logins: the socket's owner is
// trusted (warm pulls through it). Stop gives the requests in flight
// shutdown_grace at most (less if ctx ends first), as the main listener
// has; only its first call does anything. A socket file left by a process that
// died is replaced; one a live server answers on means the data directory
// is in use.
func startAdmin(cfg config.Config, store *cache.Store, mirror string, registry http.Handler, obs *observers, log *slog.Logger) (stop func(context.Context), err error) {
	path := adminSocket(cfg.Data)
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	if err := resetImportTemp(cfg.Data); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v2/", auth.Trusted(registry))
	mux.Handle("/", adminHandler(cfg, store, mirror, log, "", 0, obs))
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin socket stopped", "err", err)
		}
	}()
	var once sync.Once
	return func(ctx context.Context) {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.ShutdownGrace))
			defer cancel()
			if err := hs.Shutdown(ctx); err != nil {
				hs.Close()
			}
			<-done
			os.Remove(path)
		})
	}, nil
}

func removeStaleSocket(path string) error {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("admin socket %s: another pullcache is serving this data directory", path)
	}
	return os.Remove(path)
}

// mirrorURL is how a process on this host reaches the registry API on addr.
func mirrorURL(addr net.Addr, tls bool) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return ""
	}
	host := "127.0.0.1"
	if !tcp.IP.IsUnspecified() && tcp.IP != nil {
		host = tcp.IP.String()
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}

// socketTransport sends every request to the unix socket at path in plain
// HTTP, whatever its URL says (the registry API's https:// URL included).
type socketTransport struct{ base *http.Transport }

func newSocketTransport(path string) socketTransport {
	return socketTransport{&http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
}

func (t socketTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host = "http", "pullcache"
	return t.base.RoundTrip(r)
}

// adminClient talks to a running server's admin socket.
type adminClient struct {
	http *http.Client
}

// dialAdmin returns a client of the server running on data, or false when
// none answers (then the command opens the store itself).
func dialAdmin(data string) (*adminClient, bool) {
	path := adminSocket(data)
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil, false
	}
	c.Close()
	return &adminClient{http: &http.Client{Transport: newSocketTransport(path)}}, true
}

// do sends a request to the admin API and returns the response, or the
// error the API answered with.
func (c *adminClient) do(ctx context.Context, method, pathQuery string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://pullcache"+pathQuery, body)
	if err != nil {
		return nil, err
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, apiError(resp)
	}
	return resp, nil
}

func (c *adminClient) getJSON(ctx context.Context, pathQuery string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, pathQuery, nil, -1)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// apiError turns an OCI error body into an error carrying its message.
func apiError(resp *http.Response) error {
	var body struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil || len(body.Errors) == 0 {
		return fmt.Errorf("server answered %s", resp.Status)
	}
	return errors.New(body.Errors[0].Message)
}

// commandConfig parses a command's flags (configuration flags plus the
// command's own, given by fs) around its positional arguments, loads the
// configuration and validates it. It does not touch the data directory:
// call prepareData once the arguments are known to be right.
func commandConfig(fs *flag.FlagSet, args []string) (config.Config, []string, error) {
	flags := config.RegisterFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return config.Config{}, nil, err
	}
	cfg, err := flags.Load(os.Getenv)
	if err != nil {
		return cfg, nil, usageError{err.Error()}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, usageError{"invalid configuration: " + err.Error()}
	}
	return cfg, pos, nil
}

// prepareData makes the data directory absolute, creating it if needed.
func prepareData(cfg *config.Config) error {
	var err error
	cfg.Data, err = config.PrepareData(cfg.Data)
	return err
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments ("import a.tar --tag x:1").
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
