package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// Row 4: cold pull of the big image with crane, vs pulling it straight
// from the upstream. Each pull through a cache starts it on an empty
// directory; each client writes to a new directory.
func (b *bench) rowColdPull(ctx context.Context) {
	wl := fmt.Sprintf("cold pull of the %s image (crane pull --format oci), median of %d",
		sizeName(b.im.big.Layers[0].Size), b.cfg.reps)
	r := b.rep.add(&row{id: "4a", workload: wl, metric: "seconds", unit: "%.2f",
		baseline: "direct", target: target{"≤", 1.15, "×"}})
	cpu := b.rep.add(&row{id: "4b", workload: wl, metric: "client (crane) CPU s per pull", unit: "%.2f",
		baseline: "direct", target: target{"≤", 1.1, "×"}})
	r.nginx.text, cpu.nginx.text = "–", "–"
	pulls := map[string]*coldPulls{"direct": {}, "pullcache": {}, "ref": {}}
	for i := range b.cfg.reps {
		b.logf("row 4: rep %d/%d", i+1, b.cfg.reps)
		b.coldPull(ctx, b.up.url, 0, pulls["direct"])
		b.restartPullcache(ctx)
		if b.pc != nil {
			b.coldPull(ctx, b.pc.base, b.pc.proc.pid(), pulls["pullcache"])
		}
		if err := b.restartRef(ctx); err != nil {
			b.rep.errorf("row 4: %v", err)
		} else {
			b.coldPull(ctx, b.ref.base, b.ref.proc.pid(), pulls["ref"])
		}
	}
	n := b.cfg.reps
	r.pc, r.ref = medianCell(pulls["pullcache"].secs, n), medianCell(pulls["ref"].secs, n)
	d := medianCell(pulls["direct"].secs, n)
	r.ratio = ratioOf(r.pc, d)
	r.note = fmt.Sprintf("direct from upstream %s s; ref proxy %s direct", d.format("%.2f"), ratioOf(r.ref, d).format("%.2f×"))
	cpu.pc, cpu.ref = medianCell(pulls["pullcache"].crane, n), medianCell(pulls["ref"].crane, n)
	dc := medianCell(pulls["direct"].crane, n)
	cpu.ratio = ratioOf(cpu.pc, dc)
	cpu.note = fmt.Sprintf("crane pulling direct from upstream %s CPU-s; through ref proxy %s direct", dc.format("%.2f"), ratioOf(cpu.ref, dc).format("%.2f×"))
	for _, k := range []string{"direct", "pullcache", "ref"} {
		b.rep.details = append(b.rep.details, pulls[k].describe("row 4, "+k, n))
	}
}

// coldPulls are row 4's samples for one way of pulling: wall seconds and
// the CPU seconds that crane, the upstream side (registry and counting
// proxy) and the cache (if any) used meanwhile.
type coldPulls struct{ secs, crane, upstream, cache []float64 }

func (c *coldPulls) describe(what string, n int) string {
	cache := "–"
	if len(c.cache) > 0 {
		cache = medianCell(c.cache, n).format("%.2f")
	}
	return fmt.Sprintf("%s: median wall %s s; CPU s per pull: crane %s, upstream registry + counting proxy %s, cache %s",
		what, medianCell(c.secs, n).format("%.2f"), medianCell(c.crane, n).format("%.2f"),
		medianCell(c.upstream, n).format("%.2f"), cache)
}

// coldPull crane-pulls the big image from base into a fresh directory and
// adds the measurements to into; cachePID is the cache's process (0: none).
func (b *bench) coldPull(ctx context.Context, base string, cachePID int, into *coldPulls) {
	out, err := b.l.freshDir("crane-out")
	if err != nil {
		b.rep.errorf("row 4: %v", err)
		return
	}
	defer os.RemoveAll(out)
	ref := fmt.Sprintf("%s/%s:%s", strings.TrimPrefix(base, "http://"), b.im.big.Repo, b.im.big.Tag)
	before, err := b.coldCPU(cachePID)
	if err != nil {
		b.rep.errorf("row 4: %v", err)
		return
	}
	res, err := cranePull(ctx, b.tools, ref, filepath.Join(out, "layout"))
	if err != nil {
		b.rep.errorf("row 4: %v", err)
		return
	}
	after, err := b.coldCPU(cachePID)
	if err != nil {
		b.rep.errorf("row 4: %v", err)
		return
	}
	into.secs = append(into.secs, res.wall.Seconds())
	into.crane = append(into.crane, res.cpu.Seconds())
	into.upstream = append(into.upstream, after[0]-before[0])
	if cachePID > 0 {
		into.cache = append(into.cache, after[1]-before[1])
	}
}

// coldCPU reads the CPU seconds of the upstream side (the registry and this
// process, which runs the counting proxy) and of the cache process.
func (b *bench) coldCPU(cachePID int) ([2]float64, error) {
	var cpu [2]float64
	up, err := processCPU(b.upstream.proc.pid())
	if err != nil {
		return cpu, err
	}
	self, err := processCPU(os.Getpid())
	if err != nil {
		return cpu, err
	}
	cpu[0] = up + self
	if cachePID > 0 {
		if cpu[1], err = processCPU(cachePID); err != nil {
			return cpu, err
		}
	}
	return cpu, nil
}

// herdResult is one cache's outcome in row 5.
type herdResult struct {
	single, herd time.Duration
	blobGets     []int // upstream GETs per blob of the image during the herd
	manifestGets int
}

// Row 5: N clients pull the same cold multi-layer image at once. The
// upstream link is paced to cfg.wanMBps: the target is about a herd of CI
// runners sharing one internet link, not a loopback upstream that is faster
// than the clients.
func (b *bench) rowHerd(ctx context.Context) {
	n := b.cfg.clients
	b.up.link.setRate(b.cfg.wanMBps * 1e6)
	defer b.up.link.setRate(0)
	wl := fmt.Sprintf("%d clients pull one cold %d-layer image (%s) at once; upstream paced to %g MB/s",
		n, len(b.im.multi.Layers), sizeName(b.im.multi.size()), b.cfg.wanMBps)
	gets := b.rep.add(&row{id: "5a", workload: wl, metric: "upstream GETs per blob",
		target: target{"=", 1, ""}})
	wall := b.rep.add(&row{id: "5b", workload: wl, metric: "wall time, s", unit: "%.2f",
		baseline: "1 client", target: target{"≤", 1.3, "×"}})
	gets.nginx.text, wall.nginx.text = "–", "–"
	singles := map[side]cell{}
	var notes []string
	for _, s := range []side{sidePullcache, sideRef} {
		b.logf("row 5: %s", s)
		res, err := b.herd(ctx, s, n)
		if err != nil {
			b.record(gets.at(s), "row 5 "+s.String(), 0, err)
			wall.at(s).missing = "not measured"
			continue
		}
		*gets.at(s) = getsCell(res.blobGets)
		*wall.at(s) = value(res.herd.Seconds())
		singles[s] = value(res.single.Seconds())
		notes = append(notes, fmt.Sprintf("%s: %d upstream manifest GET(s)", s, res.manifestGets))
	}
	gets.note = strings.Join(notes, "; ")
	wall.ratio = ratioOf(wall.pc, singles[sidePullcache])
	wall.note = fmt.Sprintf("1 client: pullcache %s s, ref proxy %s s (ref proxy herd %s 1 client)",
		singles[sidePullcache].format("%.2f"), singles[sideRef].format("%.2f"),
		ratioOf(wall.ref, singles[sideRef]).format("%.2f×"))
}

// getsCell summarises upstream GETs per blob; its value is the count when
// every blob was fetched equally often, else the largest count.
func getsCell(gets []int) cell {
	lo, hi, total := slices.Min(gets), slices.Max(gets), 0
	for _, g := range gets {
		total += g
	}
	if lo == hi {
		return cell{v: float64(hi), ok: true, text: fmt.Sprintf("%d (each of %d blobs)", hi, len(gets))}
	}
	return cell{v: float64(hi), ok: true, text: fmt.Sprintf("%d–%d (%d GETs for %d blobs)", lo, hi, total, len(gets))}
}

// restart starts side s afresh on an empty directory.
func (b *bench) restart(ctx context.Context, s side) (*server, error) {
	if s == sideRef {
		err := b.restartRef(ctx)
		return b.ref, err
	}
	b.restartPullcache(ctx)
	if b.pc == nil {
		return nil, errNotRunning
	}
	return b.pc, nil
}

// herd times one cold pull of the multi-layer image through side s, then n
// cold pulls at once (after a restart on an empty directory), counting the
// upstream requests of the latter.
func (b *bench) herd(ctx context.Context, s side, n int) (herdResult, error) {
	var res herdResult
	srv, err := b.restart(ctx, s)
	if err != nil {
		return res, err
	}
	if res.single, err = b.pullAll(ctx, srv, 1); err != nil {
		return res, fmt.Errorf("single pull: %w", err)
	}
	if srv, err = b.restart(ctx, s); err != nil {
		return res, err
	}
	b.up.counts.reset()
	if res.herd, err = b.pullAll(ctx, srv, n); err != nil {
		return res, fmt.Errorf("%d pulls: %w", n, err)
	}
	digests := make([]string, 0, len(b.im.multi.Layers)+1)
	for _, bl := range b.im.multi.blobs() {
		digests = append(digests, bl.Digest)
	}
	res.blobGets = b.up.counts.blobGetsFor(digests)
	res.manifestGets = b.up.counts.manifests()
	return res, nil
}

// pullAll starts n pulls of the multi-layer image at the same moment and
// returns the wall time until the last one finished.
func (b *bench) pullAll(ctx context.Context, srv *server, n int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	// Only the first puller hashes the layers: in real life the clients are
	// other machines, here they share the server's cores.
	return together(ctx, n, func(ctx context.Context, i int) error {
		return pullImage(ctx, b.client, srv.base, b.im.multi, i == 0)
	})
}

// together runs f n times concurrently, released at once, and returns the
// wall time until all returned.
func together(ctx context.Context, n int, f func(ctx context.Context, i int) error) (time.Duration, error) {
	g, ctx := errgroup.WithContext(ctx)
	startLine := make(chan struct{})
	for i := range n {
		g.Go(func() error {
			<-startLine
			return f(ctx, i)
		})
	}
	start := time.Now()
	close(startLine)
	err := g.Wait()
	return time.Since(start), err
}

// Row 6: peak RSS of pullcache while n clients stream one cold huge blob.
func (b *bench) rowMemory(ctx context.Context) {
	l := b.im.huge.Layers[0]
	r := b.rep.add(&row{id: "6", workload: fmt.Sprintf("%d clients stream one cold %s blob", b.cfg.clients, sizeName(l.Size)),
		metric: "peak RSS (VmHWM), MiB", unit: "%.0f", target: target{"≤", 100, " MiB"}})
	r.nginx.text, r.ref.text = "–", "–"
	b.logf("row 6: pullcache")
	b.restartPullcache(ctx)
	if b.pc == nil {
		b.record(&r.pc, "row 6 pullcache", 0, errNotRunning)
		return
	}
	b.up.counts.reset()
	u := blobURL(b.pc.base, b.im.huge.Repo, l.Digest)
	opCtx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	// Only the first client hashes what it receives: hashing n copies would
	// make the benchmark's own CPU the bottleneck.
	wall, err := together(opCtx, b.cfg.clients, func(ctx context.Context, i int) error {
		return fetchBlob(ctx, b.client, u, l.Size, l.Digest, i == 0)
	})
	if err != nil {
		b.record(&r.pc, "row 6 pullcache", 0, err)
		return
	}
	hwm, err := peakRSS(b.pc.proc.pid())
	b.record(&r.pc, "row 6 pullcache", float64(hwm)/mib, err)
	gets := b.up.counts.blobGetsFor([]string{l.Digest})[0]
	r.note = fmt.Sprintf("%d upstream GET(s); %.1f s wall; %.0f MB/s to clients in total",
		gets, wall.Seconds(), float64(b.cfg.clients)*float64(l.Size)/wall.Seconds()/1e6)
}
