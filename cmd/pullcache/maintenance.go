package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/config"
)

// The store's maintenance commands: ls, rm, gc, verify, df, pin, unpin,
// history. Each talks to the running server through its admin socket, or,
// when none runs, opens the data directory itself.

// target is where a maintenance command runs: the server, or the store.
type target struct {
	ctx      context.Context
	client   *adminClient
	store    *cache.Store
	registry string
}

// withTarget runs fn against the server serving cfg.Data, or against the
// store opened here.
func withTarget(ctx context.Context, cfg config.Config, stderr io.Writer, fn func(target) error) error {
	if err := prepareData(&cfg); err != nil {
		return err
	}
	if c, ok := dialAdmin(cfg.Data); ok {
		return fn(target{ctx: ctx, client: c, registry: cfg.DefaultRegistry})
	}
	cfg.Log.Level = "warn"
	store, err := openStore(cfg, newLogger(cfg.Log, stderr))
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(target{ctx: ctx, store: store, registry: cfg.DefaultRegistry})
}

// call runs one operation: a request to the admin API, or offline on the
// store. The API answers with the same JSON the offline function returns.
func call[T any](t target, method, path string, body any, offline func(*cache.Store) (T, error)) (T, error) {
	if t.client == nil {
		return offline(t.store)
	}
	var out T
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return out, err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := t.client.do(t.ctx, method, path, rd, -1)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// maintenanceCommand parses the configuration flags, the command's own and
// its arguments.
func maintenanceCommand(name, usage string, args []string, stderr io.Writer, own func(fs *flag.FlagSet)) (config.Config, []string, error) {
	fs := newFlagSet(name, stderr)
	if own != nil {
		own(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pullcache %s\n", usage)
		fs.PrintDefaults()
	}
	return commandConfig(fs, args)
}

func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	cfg, pos, err := maintenanceCommand("ls", "ls [flags] [PATTERN]\n\nLists cached images; PATTERN is a glob (docker.io/library/*:*) or a part of the name.", args, stderr,
		func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") })
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError{"ls: give at most one PATTERN"}
	}
	pattern := strings.Join(pos, "")
	return withTarget(ctx, cfg, stderr, func(t target) error {
		if asJSON {
			imgs, err := call(t, http.MethodGet, "/admin/images?q="+url.QueryEscape(pattern), nil,
				func(s *cache.Store) ([]admin.Image, error) { return admin.ListMatching(s, pattern) })
			if err != nil {
				return err
			}
			return printJSON(stdout, imgs)
		}
		// The table's totals come with the list, from the same read of
		// the index.
		l, err := call(t, http.MethodGet, "/admin/images?df=1&q="+url.QueryEscape(pattern), nil,
			func(s *cache.Store) (admin.ImagesAndDF, error) { return admin.ListWithDF(s, pattern) })
		if err != nil {
			return err
		}
		printImages(stdout, l.Images, l.DF)
		return nil
	})
}

func printImages(w io.Writer, imgs []admin.Image, df admin.DF) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tDIGEST\tPLATFORMS\tSIZE\tUNIQUE\tLAST PULLED\tPINNED")
	for _, i := range imgs {
		last := "never"
		if i.LastPulled != nil {
			last = i.LastPulled.Local().Format(time.DateTime)
		}
		pinned := ""
		if i.Pinned {
			pinned = "pinned"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.Name, shortDigest(i.Digest), strings.Join(i.Platforms, ","),
			humanBytes(i.Size), humanBytes(i.UniqueSize), last, pinned)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d images; cache uses %s of %s; pinned %s\n", len(imgs), humanBytes(df.Used), boundString(df.Bound), humanBytes(df.Pinned))
	if df.PinnedOverBound {
		fmt.Fprintf(w, "WARNING: pinned images (%s) exceed the bound (%s): they are never evicted; unpin some or raise max_size\n",
			humanBytes(df.Pinned), humanBytes(df.Bound))
	}
}

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return d[:len(d)-len(hex)] + hex[:12]
	}
	return d
}

func boundString(b int64) string {
	if b <= 0 {
		return "no bound"
	}
	return humanBytes(b)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runRm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var dry bool
	cfg, names, err := maintenanceCommand("rm", "rm [flags] IMAGE...\n\nRemoves tags (NAME:TAG) or images (NAME@DIGEST); the files no other image uses are deleted.", args, stderr,
		func(fs *flag.FlagSet) { fs.BoolVar(&dry, "dry-run", false, "only say what would be removed") })
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return usageError{"rm: name at least one IMAGE"}
	}
	return withTarget(ctx, cfg, stderr, func(t target) error {
		rep, err := call(t, http.MethodPost, "/admin/rm"+dryQuery(dry), map[string][]string{"images": names},
			func(s *cache.Store) (cache.GCReport, error) { return admin.Remove(s, names, t.registry, dry) })
		if err != nil {
			return err
		}
		for _, n := range names {
			fmt.Fprintf(stdout, "%s %s\n", verb(dry, "removed", "would remove"), n)
		}
		printReport(stdout, rep)
		return nil
	})
}

func dryQuery(dry bool) string {
	if dry {
		return "?dry_run=1"
	}
	return ""
}

func verb(dry bool, done, would string) string {
	if dry {
		return would
	}
	return done
}

func printReport(w io.Writer, rep cache.GCReport) {
	for _, img := range rep.Images {
		fmt.Fprintf(w, "%s %s\n", verb(rep.DryRun, "evicted", "would evict"), img)
	}
	fmt.Fprintf(w, "%s %s: %d images, %d blobs, %d orphans; cache uses %s of %s\n",
		verb(rep.DryRun, "freed", "would free"), humanBytes(rep.Freed), rep.Evicted, rep.Blobs, rep.Orphans,
		humanBytes(rep.Usage.Used), boundString(rep.Usage.Bound))
	if rep.PinnedOverBound {
		fmt.Fprintf(w, "WARNING: pinned images (%s) exceed the bound: they are never evicted\n", humanBytes(rep.Pinned))
	}
}

func runGC(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var dry bool
	cfg, pos, err := maintenanceCommand("gc", "gc [flags]\n\nEvicts least recently used images down to the low-water mark if the cache is over its bound, and sweeps orphaned files.", args, stderr,
		func(fs *flag.FlagSet) { fs.BoolVar(&dry, "dry-run", false, "only say what would be freed") })
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("gc: unexpected argument %q", pos[0])}
	}
	return withTarget(ctx, cfg, stderr, func(t target) error {
		rep, err := call(t, http.MethodPost, "/admin/gc"+dryQuery(dry), nil,
			func(s *cache.Store) (cache.GCReport, error) { return s.GC(dry) })
		if err != nil {
			return err
		}
		printReport(stdout, rep)
		return nil
	})
}

// errVerify says verify found problems.
var errVerify = errors.New("verify found problems")

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var repair bool
	cfg, pos, err := maintenanceCommand("verify", "verify [flags]\n\nHashes every blob and checks the index against the files; exits 1 when anything is wrong.", args, stderr,
		func(fs *flag.FlagSet) {
			fs.BoolVar(&repair, "repair", false, "quarantine corrupt files and remove dangling records (the next request refetches)")
		})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("verify: unexpected argument %q", pos[0])}
	}
	return withTarget(ctx, cfg, stderr, func(t target) error {
		bar := newVerifyBar(stdout, isTerminal(stdout))
		verify := func(repair bool) (cache.VerifyReport, error) {
			if t.client != nil {
				return t.client.verify(t.ctx, repair, bar.update)
			}
			return t.store.Verify(cache.VerifyOptions{Repair: repair, Progress: bar.update})
		}
		rep, err := verify(repair)
		bar.done()
		if err != nil {
			return err
		}
		printVerify(stdout, rep)
		if repair && !rep.Clean() {
			if rep, err = verify(false); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "after repair:")
			printVerify(stdout, rep)
		}
		if !rep.Clean() {
			return errVerify
		}
		return nil
	})
}

func printVerify(w io.Writer, r cache.VerifyReport) {
	fmt.Fprintf(w, "checked %d files, %s\n", r.Files, humanBytes(r.Bytes))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, row := range []struct {
		n    int
		what string
	}{
		{len(r.Corrupt), "corrupt files (do not hash to their name)"},
		{len(r.Stray), "stray files in blobs/"},
		{r.MissingFiles, "blob records whose file is gone"},
		{r.Unrecorded, "files the index does not count"},
		{r.DanglingManifests, "manifest records whose bytes are gone"},
		{r.DanglingTags, "tags pointing at no manifest"},
		{r.TempFiles, "leftover temp files"},
		{r.Orphans, "orphans (no manifest references them; swept after the grace period)"},
		{r.Incomplete, "image manifests with blobs not cached (fetched on demand)"},
		{r.DanglingLinks, "repository links to nothing"},
	} {
		fmt.Fprintf(tw, "  %d\t%s\n", row.n, row.what)
	}
	tw.Flush()
	for _, c := range r.Corrupt {
		fmt.Fprintf(w, "corrupt: %s\n", c)
	}
	for _, q := range r.Quarantined {
		fmt.Fprintf(w, "quarantined: %s\n", q)
	}
	switch {
	case r.Clean():
		fmt.Fprintln(w, "the store is sound")
	case r.Repaired:
		fmt.Fprintln(w, "repaired")
	default:
		fmt.Fprintln(w, "problems found: run 'pullcache verify --repair'")
	}
}

// verifyBar draws verify's progress on a terminal.
type verifyBar struct {
	w    io.Writer
	tty  bool
	last time.Time
	drew bool
}

func newVerifyBar(w io.Writer, tty bool) *verifyBar { return &verifyBar{w: w, tty: tty} }

func (b *verifyBar) update(done, total int64) {
	if !b.tty || time.Since(b.last) < 100*time.Millisecond {
		return
	}
	b.last, b.drew = time.Now(), true
	fmt.Fprintf(b.w, "\r\x1b[K%s", barLine("verifying", admin.Progress{Done: done, Total: total}))
}

func (b *verifyBar) done() {
	if b.drew {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
}

func runDf(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	cfg, pos, err := maintenanceCommand("df", "df [flags]\n\nShows the bound and what the cache uses, by category.", args, stderr,
		func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") })
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("df: unexpected argument %q", pos[0])}
	}
	return withTarget(ctx, cfg, stderr, func(t target) error {
		df, err := call(t, http.MethodGet, "/admin/df", nil, admin.DiskUsage)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, df)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, row := range []struct {
			k string
			v int64
		}{
			{"bound", df.Bound}, {"used", df.Used}, {"  blobs", df.Blobs}, {"  index", df.Index}, {"  tmp", df.Tmp},
			{"pinned", df.Pinned}, {"reclaimable", df.Reclaimable}, {"min free", df.MinFree}, {"free on disk", df.Free},
		} {
			v := humanBytes(row.v)
			if row.k == "bound" {
				v = boundString(row.v)
			}
			fmt.Fprintf(tw, "%s\t%s\n", row.k, v)
		}
		tw.Flush()
		if df.PinnedOverBound {
			fmt.Fprintln(stdout, "WARNING: pinned images exceed the bound: they are never evicted")
		}
		return nil
	})
}

func runPin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return pinCommand(ctx, "pin", args, stdout, stderr)
}

func runUnpin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return pinCommand(ctx, "unpin", args, stdout, stderr)
}

func pinCommand(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	cfg, names, err := maintenanceCommand(name, name+" [flags] IMAGE...\n\nIMAGE is NAME:TAG, NAME@DIGEST or a pattern such as docker.io/library/golang:*; pinned images are never evicted.", args, stderr, nil)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return usageError{name + ": name at least one IMAGE"}
	}
	return withTarget(ctx, cfg, stderr, func(t target) error {
		fn := admin.Pin
		if name == "unpin" {
			fn = admin.Unpin
		}
		out, err := call(t, http.MethodPost, "/admin/"+name, map[string][]string{"images": names},
			func(s *cache.Store) (map[string][]string, error) {
				done, err := fn(s, names, t.registry)
				return map[string][]string{name + "ned": done}, err
			})
		for _, p := range out[name+"ned"] {
			fmt.Fprintf(stdout, "%sned %s\n", name, p)
		}
		return err
	})
}

func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	cfg, pos, err := maintenanceCommand("history", "history [flags] IMAGE[:TAG]\n\nEvery digest a tag pointed to, with when it was first and last seen (every tag of IMAGE without :TAG).", args, stderr,
		func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") })
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"history: name one IMAGE[:TAG]"}
	}
	return withTarget(ctx, cfg, stderr, func(t target) error {
		hs, err := call(t, http.MethodGet, "/admin/history?image="+url.QueryEscape(pos[0]), nil,
			func(s *cache.Store) ([]admin.TagHistory, error) { return admin.History(s, pos[0], t.registry) })
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, hs)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "IMAGE\tDIGEST\tFIRST SEEN\tLAST SEEN")
		for _, h := range hs {
			for _, e := range h.Entries {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Image, e.Digest, e.First.Local().Format(time.DateTime), e.Last.Local().Format(time.DateTime))
			}
		}
		return tw.Flush()
	})
}

// verify runs verify on the server, following its progress stream.
func (c *adminClient) verify(ctx context.Context, repair bool, progress func(done, total int64)) (cache.VerifyReport, error) {
	var rep cache.VerifyReport
	path := "http://pullcache/admin/verify"
	if repair {
		path += "?repair=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, path, nil)
	if err != nil {
		return rep, err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := c.http.Do(req)
	if err != nil {
		return rep, fmt.Errorf("admin socket: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rep, apiError(resp)
	}
	dec := json.NewDecoder(resp.Body)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		return rep, dec.Decode(&rep) // a server that sends the report at once
	}
	for {
		var ev admin.VerifyEvent
		if err := dec.Decode(&ev); err != nil {
			return rep, fmt.Errorf("verify: the server's answer was cut short: %w", err)
		}
		switch {
		case ev.Error != nil:
			return rep, errors.New(ev.Error.Message)
		case ev.Report != nil:
			return *ev.Report, nil
		}
		progress(ev.Done, ev.Total)
	}
}
