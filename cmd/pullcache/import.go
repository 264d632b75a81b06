package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/config"
)

type importArgs struct {
	registry string
	tags     listFlag
	paths    []string
}

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", stderr)
	var ia importArgs
	fs.StringVar(&ia.registry, "registry", "", "registry of names without one (default: the default registry, docker.io)")
	fs.Var(&ia.tags, "tag", "NAME:TAG to store the archive's only image under, instead of its own names; repeatable")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pullcache import [flags] FILE|DIR...\n\nLoads docker save tarballs, oci-archives and OCI layout directories into the cache.")
		fs.PrintDefaults()
	}
	cfg, pos, err := commandConfig(fs, args)
	if err != nil {
		return err
	}
	ia.paths = pos
	if len(ia.paths) == 0 {
		return usageError{"import: name at least one FILE or DIR"}
	}
	if len(ia.tags) > 0 && len(ia.paths) > 1 {
		return usageError{"import: --tag names one image; import one archive at a time"}
	}
	if ia.registry == "" {
		ia.registry = cfg.DefaultRegistry
	}
	if err := prepareData(&cfg); err != nil {
		return err
	}
	if c, ok := dialAdmin(cfg.Data); ok {
		return importEach(ia.paths, stdout, func(p string) ([]admin.Imported, error) { return c.importPath(ctx, p, ia) })
	}
	return importDirect(cfg, ia, stdout, stderr)
}

func importDirect(cfg config.Config, ia importArgs, stdout, stderr io.Writer) error {
	store, err := openStore(cfg, newLogger(cfg.Log, stderr))
	if err != nil {
		return err
	}
	defer store.Close()
	if err := resetImportTemp(cfg.Data); err != nil {
		return err
	}
	opts := archive.Options{DefaultRegistry: ia.registry, Tags: ia.tags, TempDir: importTemp(cfg.Data)}
	return importEach(ia.paths, stdout, func(p string) ([]admin.Imported, error) {
		return admin.ImportFile(store, p, opts, time.Now())
	})
}

// importEach imports every path, printing what each stored; a failed path
// does not stop the others, and the error names every failed one.
func importEach(paths []string, stdout io.Writer, importOne func(string) ([]admin.Imported, error)) error {
	var errs []error
	for _, p := range paths {
		done, err := importOne(p)
		for _, im := range done {
			printImported(stdout, im)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("import %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

func printImported(w io.Writer, im admin.Imported) {
	switch {
	case im.Skipped != "":
		fmt.Fprintf(w, "skipped referrer %s (%s) of %s: %s\n", im.Digest, im.ArtifactType, im.Subject, im.Skipped)
	case im.Subject != "":
		fmt.Fprintf(w, "imported referrer %s (%s) of %s\n", im.Digest, im.ArtifactType, im.Name)
	default:
		fmt.Fprintf(w, "imported %s %s\n", im.Name, im.Digest)
	}
}

// importPath sends a file, or a directory as a tar, to the running server.
func (c *adminClient) importPath(ctx context.Context, path string, ia importArgs) ([]admin.Imported, error) {
	q := url.Values{"registry": {ia.registry}, "tag": ia.tags}
	body, size, closeBody, err := uploadBody(path)
	if err != nil {
		return nil, err
	}
	defer closeBody()
	resp, err := c.do(ctx, http.MethodPost, "/admin/import?"+q.Encode(), body, size)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var done []admin.Imported
	return done, json.NewDecoder(resp.Body).Decode(&done)
}

// uploadBody opens a file, or streams a directory as a tar, with its size
// (-1 when unknown).
func uploadBody(path string) (io.Reader, int64, func(), error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, nil, err
	}
	if !fi.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, nil, err
		}
		return f, fi.Size(), func() { f.Close() }, nil
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarDir(path, pw)) }()
	return pr, -1, func() { pr.Close() }, nil
}

// tarDir writes the regular files of dir as a tar (an OCI layout directory
// on its way to the server, which checks it as it checks any archive).
func tarDir(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		return addFile(tw, p, filepath.ToSlash(rel))
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func addFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: fi.Size(), Typeflag: tar.TypeReg, ModTime: fi.ModTime()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
