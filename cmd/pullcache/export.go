package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/config"
)

type exportArgs struct {
	out      string
	platform string
	all      bool
	images   []string
}

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", stderr)
	var ea exportArgs
	fs.StringVar(&ea.out, "o", "", "the OCI-layout tar to write (required)")
	fs.StringVar(&ea.platform, "platform", "", "export only this platform (os/arch[/variant]) of multi-platform images (default: all)")
	fs.BoolVar(&ea.all, "all", false, "export every tagged image in the cache (those not completely cached are skipped and listed)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pullcache export [flags] -o FILE IMAGE... | --all")
		fs.PrintDefaults()
	}
	cfg, pos, err := commandConfig(fs, args)
	if err != nil {
		return err
	}
	ea.images = pos
	if err := ea.check(); err != nil {
		return err
	}
	if err := prepareData(&cfg); err != nil {
		return err
	}
	return writeAtomically(ea.out, func(w io.Writer) (admin.ExportResult, error) {
		if c, ok := dialAdmin(cfg.Data); ok {
			return c.export(ctx, ea, w)
		}
		return exportDirect(cfg, ea, w, stderr)
	}, stdout)
}

func (ea exportArgs) check() error {
	switch {
	case ea.out == "":
		return usageError{"export: -o FILE is required"}
	case ea.all && len(ea.images) > 0:
		return usageError{"export: name images or pass --all, not both"}
	case !ea.all && len(ea.images) == 0:
		return usageError{"export: name at least one IMAGE, or pass --all"}
	}
	if ea.platform != "" {
		if _, err := v1.ParsePlatform(ea.platform); err != nil {
			return usageError{fmt.Sprintf("export: --platform %q: %v", ea.platform, err)}
		}
	}
	return nil
}

func (ea exportArgs) options(registry string) (admin.ExportOptions, error) {
	opts := admin.ExportOptions{All: ea.all}
	for _, img := range ea.images {
		n, err := archive.ParseName(img, registry)
		if err != nil {
			return opts, usageError{err.Error()}
		}
		opts.Names = append(opts.Names, n)
	}
	if ea.platform != "" {
		opts.Platform, _ = v1.ParsePlatform(ea.platform)
	}
	return opts, nil
}

func exportDirect(cfg config.Config, ea exportArgs, w io.Writer, stderr io.Writer) (admin.ExportResult, error) {
	opts, err := ea.options(cfg.DefaultRegistry)
	if err != nil {
		return admin.ExportResult{}, err
	}
	store, err := openStore(cfg, newLogger(cfg.Log, stderr))
	if err != nil {
		return admin.ExportResult{}, err
	}
	defer store.Close()
	return admin.Export(store, opts, w)
}

func (c *adminClient) export(ctx context.Context, ea exportArgs, w io.Writer) (admin.ExportResult, error) {
	q := url.Values{"image": ea.images}
	if ea.all {
		q.Set("all", "1")
	}
	if ea.platform != "" {
		q.Set("platform", ea.platform)
	}
	resp, err := c.do(ctx, http.MethodGet, "/admin/export?"+q.Encode(), nil, -1)
	if err != nil {
		return admin.ExportResult{}, err
	}
	defer resp.Body.Close()
	var res admin.ExportResult
	res.Exported = append(res.Exported, splitNonEmpty(resp.Header.Get("Pullcache-Exported"))...)
	if s := resp.Header.Get("Pullcache-Skipped"); s != "" {
		_ = json.Unmarshal([]byte(s), &res.Skipped)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return res, fmt.Errorf("export cut short: %w", err)
	}
	return res, nil
}

func splitNonEmpty(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// writeAtomically writes the export to a temporary file next to out and
// renames it into place only when complete: a failed export leaves no
// partial bundle that could be carried away.
func writeAtomically(out string, write func(io.Writer) (admin.ExportResult, error), stdout io.Writer) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+"-*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer os.Remove(tmp.Name())
	res, err := write(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for _, n := range res.Exported {
		fmt.Fprintf(stdout, "exported %s\n", n)
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(stdout, "skipped %s\n", s)
	}
	fmt.Fprintf(stdout, "wrote %s: %d images\n", out, len(res.Exported))
	return nil
}
