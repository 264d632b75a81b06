package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// wrkReport is printed by wrk's done() hook with exact counts; wrk's own
// summary rounds bytes to three digits.
const wrkReport = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("PULLCACHE_BENCH requests=%d bytes=%d duration_us=%d errors=%d\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout))
end
`

// wrkLoad is one wrk invocation's shape.
type wrkLoad struct {
	threads, conns int
	dur            time.Duration
	headers        []string // "Name: value"
}

// wrkResult is what wrk measured.
type wrkResult struct {
	requests, bytes, errors int64
	dur                     time.Duration
}

func (r wrkResult) reqPerSec() float64   { return float64(r.requests) / r.dur.Seconds() }
func (r wrkResult) bytesPerSec() float64 { return float64(r.bytes) / r.dur.Seconds() }

// runWrk runs wrk against url and parses the report line of wrkReport.
// Any connection error or non-2xx/3xx answer fails the measurement: a fast
// stream of 404s is not a result.
func runWrk(ctx context.Context, t tools, script string, load wrkLoad, url string) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, load.dur+time.Minute)
	defer cancel()
	args := []string{
		fmt.Sprintf("-t%d", load.threads), fmt.Sprintf("-c%d", load.conns),
		fmt.Sprintf("-d%ds", int(load.dur.Seconds())), "--timeout", "60s", "-s", script,
	}
	for _, h := range load.headers {
		args = append(args, "-H", h)
	}
	out, err := exec.CommandContext(ctx, t.wrk, append(args, url)...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w: %s", url, err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w", url, err)
	}
	if r.requests == 0 || r.errors > 0 {
		return r, fmt.Errorf("wrk %s: %d requests, %d errors", url, r.requests, r.errors)
	}
	return r, nil
}

// parseWrk finds the PULLCACHE_BENCH line in wrk's output.
func parseWrk(out string) (wrkResult, error) {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, "PULLCACHE_BENCH ")
		if !ok {
			continue
		}
		var r wrkResult
		var us int64
		if _, err := fmt.Sscanf(rest, "requests=%d bytes=%d duration_us=%d errors=%d",
			&r.requests, &r.bytes, &us, &r.errors); err != nil {
			return wrkResult{}, fmt.Errorf("parse %q: %w", line, err)
		}
		r.dur = time.Duration(us) * time.Microsecond
		if r.dur <= 0 {
			return wrkResult{}, fmt.Errorf("zero duration in %q", line)
		}
		return r, nil
	}
	return wrkResult{}, errors.New("no PULLCACHE_BENCH line in wrk output")
}

// writeWrkScript writes wrkReport into dir and returns its path.
func writeWrkScript(dir string) (string, error) {
	p := filepath.Join(dir, "report.lua")
	if err := os.WriteFile(p, []byte(wrkReport), 0o644); err != nil {
		return "", fmt.Errorf("write wrk script: %w", err)
	}
	return p, nil
}

// get issues a GET with an optional Accept header and fails on non-200.
func get(ctx context.Context, client *http.Client, url, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return resp, nil
}

// clientBuf is what a bench client reads per call: large enough that 128
// in-process clients of a 100 MiB blob cost a few system calls per MiB (an
// io.Copy into io.Discard reads 8 KiB at a time).
const clientBuf = 256 << 10

// fetchBlob GETs url and checks that exactly size bytes arrive, reading
// clientBuf at a time into a byte counter; with verify it also checks their
// sha256 against digest. It is cheap on purpose: many such clients share
// the server's cores.
func fetchBlob(ctx context.Context, client *http.Client, url string, size int64, digest string, verify bool) error {
	resp, err := get(ctx, client, url, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h hash.Hash
	var w io.Writer = &countWriter{}
	if verify {
		h = sha256.New()
		w = h
	}
	// Neither the hash nor countWriter has ReadFrom, and the body has no
	// WriteTo, so CopyBuffer really reads clientBuf at a time.
	n, err := io.CopyBuffer(w, resp.Body, make([]byte, clientBuf))
	if err != nil {
		return fmt.Errorf("GET %s: after %d bytes: %w", url, n, err)
	}
	if n != size {
		return fmt.Errorf("GET %s: got %d bytes, want %d", url, n, size)
	}
	if verify && hexDigest(h) != digest {
		return fmt.Errorf("GET %s: body has digest %s", url, hexDigest(h))
	}
	return nil
}

// fetchManifest GETs a manifest and checks that its bytes hash to digest.
func fetchManifest(ctx context.Context, client *http.Client, url, digest string) ([]byte, error) {
	resp, err := get(ctx, client, url, acceptManifests)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if got := digestOf(b); got != digest {
		return nil, fmt.Errorf("GET %s: manifest digest %s, want %s", url, got, digest)
	}
	return b, nil
}

// blobParallelism is how many blobs one puller fetches at once: the Docker
// daemon's default max-concurrent-downloads.
const blobParallelism = 3

// pullImage does what a registry client does: the manifest by tag, then
// every blob it lists (three at a time), each checked by size and, with
// verify, by digest.
func pullImage(ctx context.Context, client *http.Client, base string, im *image, verify bool) error {
	m, err := fetchManifest(ctx, client, fmt.Sprintf("%s/v2/%s/manifests/%s", base, im.Repo, im.Tag), im.ManifestDigest)
	if err != nil {
		return err
	}
	var parsed struct {
		Config blob   `json:"config"`
		Layers []blob `json:"layers"`
	}
	if err := json.Unmarshal(m, &parsed); err != nil {
		return fmt.Errorf("parse manifest: %w", err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(blobParallelism)
	for _, b := range append([]blob{parsed.Config}, parsed.Layers...) {
		g.Go(func() error {
			return fetchBlob(ctx, client, blobURL(base, im.Repo, b.Digest), b.Size, b.Digest, verify)
		})
	}
	return g.Wait()
}

func blobURL(base, repo, digest string) string {
	return fmt.Sprintf("%s/v2/%s/blobs/%s", base, repo, digest)
}

// pullResult is the wall time of a client and the CPU time it used.
type pullResult struct{ wall, cpu time.Duration }

// cranePull runs `crane pull --format oci` of ref into a new directory.
func cranePull(ctx context.Context, t tools, ref, outDir string) (pullResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.crane, "pull", "--insecure", "--format", "oci", ref, outDir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return pullResult{}, fmt.Errorf("crane pull %s: %w: %s", ref, err, lastLines(out.String(), 5))
	}
	return pullResult{wall: wall, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}, nil
}

// lastLines returns the last n lines of s, for error messages.
func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
