package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/term"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/config"
)

type warmArgs struct {
	platform    string
	list        string
	concurrency int
	images      []string
}

func runWarm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("warm", stderr)
	var wa warmArgs
	fs.StringVar(&wa.platform, "platform", "", "pull only this platform (os/arch[/variant]) of multi-platform images (default: all)")
	fs.StringVar(&wa.list, "f", "", "file listing images, one per line (# starts a comment)")
	fs.IntVar(&wa.concurrency, "concurrency", 4, "images pulled at once")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pullcache warm [flags] IMAGE... | -f LIST")
		fs.PrintDefaults()
	}
	cfg, pos, err := commandConfig(fs, args)
	if err != nil {
		return err
	}
	if wa.images, err = wa.collect(pos); err != nil {
		return err
	}
	if err := prepareData(&cfg); err != nil {
		return err
	}
	opts := admin.WarmOptions{DefaultRegistry: cfg.DefaultRegistry, Concurrency: wa.concurrency}
	if wa.platform != "" {
		if opts.Platform, err = v1.ParsePlatform(wa.platform); err != nil {
			return usageError{fmt.Sprintf("warm: --platform %q: %v", wa.platform, err)}
		}
	}
	view := newProgressView(stdout, isTerminal(stdout), wa.images)
	opts.Progress = view.update
	results, err := warmVia(ctx, cfg, opts, wa.images, stderr)
	if err != nil {
		return err
	}
	return view.summary(results)
}

// collect gathers the images from the arguments and the -f list.
func (wa warmArgs) collect(pos []string) ([]string, error) {
	images := append([]string(nil), pos...)
	if wa.list != "" {
		more, err := readList(wa.list)
		if err != nil {
			return nil, err
		}
		images = append(images, more...)
	}
	if len(images) == 0 {
		return nil, usageError{"warm: name at least one IMAGE, or -f LIST"}
	}
	if wa.concurrency < 1 {
		return nil, usageError{"warm: --concurrency must be at least 1"}
	}
	return images, nil
}

func readList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("warm: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out, sc.Err()
}

// warmVia pulls through the running server's mirror when one serves this
// data directory, else through a mirror started in this process.
func warmVia(ctx context.Context, cfg config.Config, opts admin.WarmOptions, images []string, stderr io.Writer) ([]admin.WarmResult, error) {
	if c, ok := dialAdmin(cfg.Data); ok {
		var info admin.Info
		if err := c.getJSON(ctx, "/admin/info", &info); err != nil {
			return nil, err
		}
		// Through the socket's registry API: no login, no TLS to trust.
		opts.Mirror = info.Mirror
		opts.Client = &http.Client{Transport: newSocketTransport(adminSocket(cfg.Data))}
		opts.Committed = c.waitFill
		return admin.Warm(ctx, opts, images), nil
	}
	if cfg.Offline {
		return nil, errors.New("warm: offline is set; warming needs an upstream")
	}
	return warmInProcess(ctx, cfg, opts, images, stderr)
}

// warmInProcess runs the mirror, wired as serve wires it, on a unix
// socket of a private directory for the time of the warm: no other user
// can reach it, so it needs no logins.
func warmInProcess(ctx context.Context, cfg config.Config, opts admin.WarmOptions, images []string, stderr io.Writer) ([]admin.WarmResult, error) {
	if cfg.Log.Level == "info" {
		cfg.Log.Level = "warn" // one line per request would drown the progress
	}
	log := newLogger(cfg.Log, stderr)
	store, err := openStore(cfg, log)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	srv, err := newProxy(cfg, store, log, prometheus.NewRegistry(), nil, nil)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	dir, err := os.MkdirTemp("", "pullcache-warm-") // mode 0700
	if err != nil {
		return nil, fmt.Errorf("warm: %w", err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "mirror.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("warm: listen: %w", err)
	}
	hs := newHTTPServer(srv, log)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln)
	}()
	opts.Mirror = "http://pullcache"
	opts.Client = &http.Client{Transport: newSocketTransport(sock)}
	opts.Committed = store.WaitFill
	results := admin.Warm(ctx, opts, images)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(cfg.ShutdownGrace))
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	<-served
	return results, nil
}

// isTerminal reports whether w is a terminal, where progress bars are
// drawn; elsewhere (a file, a pipe, /dev/null) plain lines are written.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressView shows warm progress: on a terminal one bar per image,
// redrawn in place; otherwise one line when an image finishes.
type progressView struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	images []string
	state  map[string]admin.Progress
	drawn  bool
	last   time.Time
}

func newProgressView(w io.Writer, tty bool, images []string) *progressView {
	v := &progressView{w: w, tty: tty, images: images, state: map[string]admin.Progress{}}
	if !tty {
		fmt.Fprintf(w, "warming %d images\n", len(images))
	}
	return v
}

func (v *progressView) update(p admin.Progress) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.state[p.Image] = p
	if !v.tty {
		if p.Finished {
			fmt.Fprintln(v.w, plainLine(p))
		}
		return
	}
	// Redraw at most ten times a second, and always when an image ends.
	if now := time.Now(); p.Finished || now.Sub(v.last) >= 100*time.Millisecond {
		v.last = now
		v.redraw()
	}
}

func plainLine(p admin.Progress) string {
	if p.Err != nil {
		return fmt.Sprintf("failed %s: %v", p.Image, p.Err)
	}
	return fmt.Sprintf("warmed %s (%s)", p.Image, humanBytes(p.Done))
}

func (v *progressView) redraw() {
	if v.drawn {
		fmt.Fprintf(v.w, "\x1b[%dA", len(v.images))
	}
	v.drawn = true
	for _, img := range v.images {
		fmt.Fprintf(v.w, "\r\x1b[K%s\n", barLine(img, v.state[img]))
	}
}

func barLine(img string, p admin.Progress) string {
	const width = 30
	filled := 0
	if p.Total > 0 {
		filled = int(float64(width) * float64(min(p.Done, p.Total)) / float64(p.Total))
	}
	status := fmt.Sprintf("%s / %s", humanBytes(p.Done), humanBytes(p.Total))
	switch {
	case p.Err != nil:
		status = "failed: " + p.Err.Error()
	case p.Finished:
		filled, status = width, "done "+humanBytes(p.Done)
	}
	return fmt.Sprintf("%-40s [%s%s] %s", img, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), status)
}

// humanBytes is n in binary units, e.g. "3.2 MiB" (a negative n reads as 0).
func humanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

// summary prints the totals and returns an error naming every failed image.
func (v *progressView) summary(results []admin.WarmResult) error {
	var failed []string
	var total int64
	for _, r := range results {
		total += r.Bytes
		if r.Error != "" {
			failed = append(failed, r.Image)
			if v.tty {
				fmt.Fprintf(v.w, "failed %s: %s\n", r.Image, r.Error)
			}
		}
	}
	fmt.Fprintf(v.w, "warmed %d of %d images, %s\n", len(results)-len(failed), len(results), humanBytes(total))
	if len(failed) > 0 {
		return fmt.Errorf("warm failed for %d images: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// waitFill returns once the server has no fill of h in flight: warm's
// bytes of h are then committed (see admin.WarmOptions.Committed).
func (c *adminClient) waitFill(ctx context.Context, h v1.Hash) error {
	var done struct{}
	return c.getJSON(ctx, "/admin/fill?digest="+url.QueryEscape(h.String()), &done)
}
