package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/cache"
)

// indexConfig sizes the index-scale measurement (-index).
type indexConfig struct {
	images    int // synthetic images; each has a config and 9 layers, one shared by 50
	confirms  int // tag revalidations for the churn measurement
	keep      bool
	pullcache string
}

// indexResult is what runIndex measured.
type indexResult struct {
	images, blobs       int
	generate            time.Duration
	start, ready        time.Duration
	rssReady, rssPeak   int64
	ls                  time.Duration
	lsEntries           int
	used                int64 // what the store occupies, as df says
	evict               time.Duration
	evicted             int
	evictStart          time.Duration // exec to listening, with a bound
	evictPeak           int64
	confirms            int
	confirmTook         time.Duration
	idxBefore, idxAfter int64
	idxReopened         int64
}

// runIndex measures the index at scale: start-up time and memory of
// pullcache serve over a synthetic store, ls of every image through the
// admin socket, one eviction pass, and the index's size under tag churn.
func runIndex(ctx context.Context, cfg indexConfig, progress io.Writer) (*indexResult, error) {
	root, err := os.MkdirTemp("", "pullcache-bench-index-")
	if err != nil {
		return nil, err
	}
	if !cfg.keep {
		defer os.RemoveAll(root)
	}
	res := &indexResult{images: cfg.images}
	data := filepath.Join(root, "data")
	fmt.Fprintf(progress, "generating %d images in %s\n", cfg.images, data)
	t0 := time.Now()
	if res.blobs, err = cache.GenerateSynthetic(data, cfg.images, 9); err != nil {
		return nil, err
	}
	res.generate = time.Since(t0)
	bin := cfg.pullcache
	if bin == "" {
		bin = filepath.Join(root, "pullcache")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pullcache").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	fmt.Fprintln(progress, "start-up, memory and ls")
	if err := res.serve(ctx, bin, data); err != nil {
		return res, err
	}
	fmt.Fprintln(progress, "one eviction pass")
	if err := res.evictPass(ctx, bin, data); err != nil {
		return res, err
	}
	fmt.Fprintf(progress, "%d tag revalidations\n", cfg.confirms)
	res.confirms = cfg.confirms
	return res, res.churn(filepath.Join(root, "churn"), cfg.confirms)
}

// serve starts pullcache on the synthetic data and measures it.
func (r *indexResult) serve(ctx context.Context, bin, data string) error {
	cmd := exec.CommandContext(ctx, bin, "serve", "--data", data, "--listen", "127.0.0.1:0", "--offline")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "msg=listening") {
			break
		}
	}
	r.start = time.Since(t0)
	go io.Copy(io.Discard, stderr)
	client := socketClient(filepath.Join(data, "admin.sock"))
	for ctx.Err() == nil {
		var u cache.Usage
		if err := getJSON(client, "/admin/df", &u); err != nil {
			return err
		}
		if u.Ready && !u.Loading {
			r.used = u.Used
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a server's state, not waiting for a result of ours
	}
	r.ready = time.Since(t0)
	r.rssReady, _ = currentRSS(cmd.Process.Pid)
	t1 := time.Now()
	var imgs []json.RawMessage
	if err := getJSON(client, "/admin/images", &imgs); err != nil {
		return err
	}
	r.ls, r.lsEntries = time.Since(t1), len(imgs)
	r.rssPeak, _ = peakRSS(cmd.Process.Pid)
	return nil
}

func socketClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
}

func getJSON(c *http.Client, path string, v any) error {
	resp, err := c.Get("http://pullcache" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func currentRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return parseKB(rest)
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

// evictPass starts pullcache again with a bound just under what the
// store holds, so that its first pass evicts a tenth of the images (down
// to the low-water mark), and reads the pass's time from its log line and
// the process's peak memory after it.
func (r *indexResult) evictPass(ctx context.Context, bin, data string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	bound := r.used - r.used/100
	cmd := exec.CommandContext(ctx, bin, "serve", "--data", data, "--listen", "127.0.0.1:0", "--offline",
		"--max-size", fmt.Sprint(bound))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "msg=listening") {
			r.evictStart = time.Since(t0)
		}
		if strings.Contains(line, `msg="eviction pass"`) {
			return r.notePass(line, cmd.Process.Pid)
		}
	}
	return fmt.Errorf("pullcache serve --max-size %d ended without an eviction pass (%v)", bound, ctx.Err())
}

// notePass reads images= and took= from a pass's log line.
func (r *indexResult) notePass(line string, pid int) error {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "images="); ok {
			fmt.Sscan(v, &r.evicted)
		}
		if v, ok := strings.CutPrefix(f, "took="); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("pass took %q: %w", v, err)
			}
			r.evict = d
		}
	}
	var err error
	r.evictPeak, err = peakRSS(pid)
	return err
}

// churn revalidates tags n times (1000 tags, in rounds) and measures the
// index before, after, and after a reopen.
func (r *indexResult) churn(dir string, n int) error {
	s, err := cache.Open(cache.Options{Dir: dir, Housekeeping: -1})
	if err != nil {
		return err
	}
	const tags = 1000
	repo := cache.Repo{Registry: "docker.io", Name: "library/churn"}
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	for i := range tags {
		if err := s.ConfirmTag(repo, fmt.Sprint("t", i), d, time.Now()); err != nil {
			return err
		}
	}
	r.idxBefore = dirAllocated(filepath.Join(dir, "index"))
	t0 := time.Now()
	for i := range n {
		if err := s.ConfirmTag(repo, fmt.Sprint("t", i%tags), d, time.Now()); err != nil {
			return err
		}
	}
	r.confirmTook = time.Since(t0)
	r.idxAfter = dirAllocated(filepath.Join(dir, "index"))
	if err := s.Close(); err != nil {
		return err
	}
	s, err = cache.Open(cache.Options{Dir: dir, Housekeeping: -1})
	if err != nil {
		return err
	}
	r.idxReopened = dirAllocated(filepath.Join(dir, "index"))
	return s.Close()
}

func dirAllocated(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					n += st.Blocks * 512
				}
			}
		}
		return nil
	})
	return n
}

func (r *indexResult) write(w io.Writer) {
	mib := func(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
	fmt.Fprintf(w, "\n### Index at scale: %d images, %d blobs (generated in %s)\n\n", r.images, r.blobs, r.generate.Round(time.Second))
	fmt.Fprintln(w, "| measurement | result | target |")
	fmt.Fprintln(w, "|---|---|---|")
	fmt.Fprintf(w, "| start-up (exec to listening) | %s | ≤2 s |\n", r.start.Round(time.Millisecond))
	fmt.Fprintf(w, "| graph loaded, every blob counted (background) | %s | ≤10 s |\n", r.ready.Round(time.Millisecond))
	fmt.Fprintf(w, "| RSS when loaded / peak (VmHWM, start-up and ls) | %s / %s | ≤300 MiB |\n", mib(r.rssReady), mib(r.rssPeak))
	fmt.Fprintf(w, "| ls of every image (%d entries, admin socket) | %s | ≤1 s |\n", r.lsEntries, r.ls.Round(time.Millisecond))
	fmt.Fprintf(w, "| one eviction pass in serve --max-size (%d images evicted; started in %s) | %s | ≤1 s for 10,000 |\n",
		r.evicted, r.evictStart.Round(time.Millisecond), r.evict.Round(time.Millisecond))
	fmt.Fprintf(w, "| peak RSS of that process (VmHWM: start-up, graph, pass) | %s | ≤300 MiB |\n", mib(r.evictPeak))
	fmt.Fprintf(w, "| index after %d tag revalidations (1000 tags) | %s → %s (%s after reopen), %s | bounded |\n",
		r.confirms, mib(r.idxBefore), mib(r.idxAfter), mib(r.idxReopened), r.confirmTook.Round(time.Millisecond))
}
