// Command bench measures pullcache side by side with nginx (serving the same
// blob files with sendfile) and the reference registry in proxy mode, all on
// 127.0.0.1, against a local reference registry as the upstream, and prints
// one Markdown table of the targets in shared/MISSION.md.
//
// Usage, from the module root:
//
//	go run ./bench            # full mode, a few minutes on 2 cores
//	go run ./bench -quick     # smoke mode, small sizes, under ~90 s
//	go run ./bench -merge a.md b.md c.md   # medians and spread of reports written with -o
//	go run ./bench -index     # the index at scale: 100,000 images, 900,000 blobs
//	go run ./bench -index -quick
//
// It is not a load test of anything but loopback servers it starts itself,
// and it asserts nothing: it reports.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := mainErr(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func mainErr(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "-merge" {
		if len(args) < 2 {
			return errors.New("-merge: name the report files (written with -o)")
		}
		return mergeReports(args[1:], stdout)
	}
	if idx, ok, err := parseIndexFlags(args, stderr); ok || err != nil {
		if err != nil {
			return err
		}
		res, err := runIndex(context.Background(), idx, stderr)
		if res != nil {
			res.write(stdout)
		}
		return err
	}
	cfg, out, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	// Ctrl-C or SIGTERM cancels the run; run's deferred cleanup then stops
	// every server it started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	limit := 30 * time.Minute
	if cfg.quick {
		limit = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	rep, err := run(ctx, cfg, stderr)
	if rep != nil {
		rep.write(stdout)
		if out != "" {
			if werr := writeReport(out, rep); werr != nil {
				return werr
			}
		}
	}
	return err
}

func parseFlags(args []string, stderr io.Writer) (config, string, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "smoke mode: small sizes, 1 s per wrk run, 4 clients")
	bin := fs.String("pullcache", "", "prebuilt pullcache binary (default: go build ./cmd/pullcache)")
	skip := fs.Bool("skip-install", false, "do not run scripts/install-test-deps.sh --bench")
	keep := fs.Bool("keep", false, "keep the temporary directory with logs and data")
	out := fs.String("o", "", "also write the report to this file")
	dur := fs.Duration("d", 0, "wrk duration per measurement (default 8s, 1s with -quick)")
	clients := fs.Int("clients", 0, "concurrent clients in rows 5 and 6 (default 32, 4 with -quick)")
	reps := fs.Int("reps", 0, "rounds per server in rows 1-4, reported as the median (default 3, 1 with -quick)")
	wan := fs.Float64("wan", 0, "upstream link rate in row 5, MB/s (default 50)")
	only := fs.String("rows", "", "comma-separated rows to run, e.g. 2,4 (default: all)")
	herd := fs.String("herd", "", "herd sizes in row 7, e.g. 1,8,32,128 (default; 1,4 with -quick)")
	uplink := fs.Float64("uplink", 0, "upstream link rate in row 7, MB/s (default 25)")
	err := fs.Parse(args)
	if err != nil {
		return config{}, "", err
	}
	cfg := fullConfig()
	if *quick {
		cfg = quickConfig()
	}
	cfg.pullcacheBin, cfg.skipInstall, cfg.keep = *bin, *skip, *keep
	if *dur > 0 {
		cfg.dur = max(*dur, time.Second)
	}
	if *clients > 0 {
		cfg.clients = *clients
	}
	if cfg.only, err = parseRows(*only); err != nil {
		return config{}, "", err
	}
	if *wan > 0 {
		cfg.wanMBps = *wan
	}
	if *reps > 0 {
		cfg.reps = *reps
	}
	if *herd != "" {
		if cfg.herdClients, err = parseCounts(*herd); err != nil {
			return config{}, "", err
		}
	}
	if *uplink > 0 {
		cfg.herdMBps = *uplink
	}
	return cfg, *out, nil
}

func writeReport(path string, rep *report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	rep.write(f)
	if err := f.Close(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// parseRows parses "2,4" into [2 4]; every row must be 1 to 8.
func parseRows(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var rows []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 8 {
			return nil, fmt.Errorf("-rows: %q is not a row from 1 to 8", f)
		}
		rows = append(rows, n)
	}
	return rows, nil
}

// parseCounts parses "1,8,32" into [1 8 32]; every count must be positive.
func parseCounts(s string) ([]int, error) {
	var ns []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-herd: %q is not a positive count", f)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// parseIndexFlags recognises the -index mode; ok says it was asked for.
func parseIndexFlags(args []string, stderr io.Writer) (indexConfig, bool, error) {
	if !slices.Contains(args, "-index") && !slices.Contains(args, "--index") {
		return indexConfig{}, false, nil
	}
	fs := flag.NewFlagSet("bench -index", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Bool("index", true, "measure the index at scale")
	quick := fs.Bool("quick", false, "small sizes: 2,000 images, 100,000 revalidations")
	images := fs.Int("images", 0, "synthetic images, 9 blobs each (default 100000)")
	confirms := fs.Int("confirms", 0, "tag revalidations (default 1000000)")
	keep := fs.Bool("keep", false, "keep the temporary directory")
	bin := fs.String("pullcache", "", "prebuilt pullcache binary (default: go build ./cmd/pullcache)")
	if err := fs.Parse(args); err != nil {
		return indexConfig{}, true, err
	}
	cfg := indexConfig{images: 100_000, confirms: 1_000_000, keep: *keep, pullcache: *bin}
	if *quick {
		cfg.images, cfg.confirms = 2000, 100_000
	}
	if *images > 0 {
		cfg.images = *images
	}
	if *confirms > 0 {
		cfg.confirms = *confirms
	}
	return cfg, true, nil
}
