package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Row 7: N clients GET one cold single-layer blob through a fresh pullcache
// at once, over an upstream link of cfg.herdMBps shared by every response
// (a site's internet uplink). Each round measures, per N:
//
//   - direct: one client pulls the image (manifest, then the layer) straight
//     from the paced upstream;
//   - herd: a pullcache on an empty directory gets one manifest GET (which
//     starts the fill through the prefetch, as a real pull does) and then N
//     clients GET the layer at once; the time runs from the manifest GET
//     until the last client has every byte;
//   - warm fan-out: the same N clients GET the now cached layer from the
//     same pullcache at once.
//
// The physical limit of the herd is the slower of the uplink (direct) and
// the machine's own send rate (warm fan-out), so the row's ratio is herd
// over the larger of the two.
func (b *bench) rowHerdFanOut(ctx context.Context) {
	im := b.im.herd
	l := im.Layers[0]
	b.up.link.setRate(b.cfg.herdMBps * 1e6)
	defer b.up.link.setRate(0)
	ns := b.cfg.herdClients
	samples := map[int]*herdSamples{}
	for _, n := range ns {
		samples[n] = &herdSamples{}
	}
	var direct []float64
	for round := range b.cfg.reps {
		b.logf("row 7: round %d/%d, direct", round+1, b.cfg.reps)
		d, err := b.directPull(ctx, im)
		if err != nil {
			b.rep.errorf("row 7 direct: %v", err)
			return
		}
		direct = append(direct, d.Seconds())
		for _, n := range ns {
			b.logf("row 7: round %d/%d, %d clients", round+1, b.cfg.reps, n)
			if err := b.herdRound(ctx, im, n, samples[n]); err != nil {
				b.rep.errorf("row 7 N=%d: %v", n, err)
			}
		}
	}
	dcell := medianCell(direct, b.cfg.reps)
	var gets []int
	for _, n := range ns {
		s := samples[n]
		gets = append(gets, s.gets...)
		r := b.rep.add(&row{id: fmt.Sprintf("7 N=%d", n),
			workload: fmt.Sprintf("herd fan-out: %d client(s) GET one cold %s layer at once; upstream paced to %g MB/s, median of %d",
				n, sizeName(l.Size), b.cfg.herdMBps, b.cfg.reps),
			metric: "wall time, s", unit: "%.2f", baseline: "max(direct, warm)", target: target{"≤", 1.3, "×"}})
		r.nginx.text, r.ref.text = "–", "–"
		r.pc = medianCell(s.herd, b.cfg.reps)
		warm := medianCell(s.warm, b.cfg.reps)
		bound := dcell
		if warm.ok && bound.ok && warm.v > bound.v {
			bound = warm
		}
		r.ratio = ratioOf(r.pc, bound)
		r.note = fmt.Sprintf("herd/direct %s, herd/warm %s; direct %s s, warm fan-out %s s; "+
			"pullcache CPU s: herd %s, warm %s; upstream GETs of the layer: %s",
			ratioOf(r.pc, dcell).format("%.2f×"), ratioOf(r.pc, warm).format("%.2f×"),
			dcell.format("%.2f"), warm.format("%.2f"),
			medianCell(s.herdCPU, b.cfg.reps).format("%.2f"), medianCell(s.warmCPU, b.cfg.reps).format("%.2f"),
			intsText(s.gets))
	}
	if len(gets) > 0 {
		r := b.rep.add(&row{id: "7 GETs", workload: "herd fan-out, every N and round",
			metric: "upstream GETs of the layer per herd", target: target{"=", 1, ""}})
		r.nginx.text, r.ref.text = "–", "–"
		r.pc = value(float64(slices.Max(gets)))
		r.pc.text = fmt.Sprintf("%d–%d", slices.Min(gets), slices.Max(gets))
		if slices.Min(gets) == slices.Max(gets) {
			r.pc.text = fmt.Sprintf("%d (each of %d herds)", gets[0], len(gets))
		}
	}
}

// herdSamples are row 7's measurements for one N: herd and warm fan-out
// wall seconds and pullcache's CPU seconds, and the upstream GETs of the
// layer during each herd.
type herdSamples struct {
	herd, warm       []float64
	herdCPU, warmCPU []float64 // pullcache's CPU seconds during each
	gets             []int
}

// herdRound measures one herd of n clients and then the warm fan-out of the
// same n, on a pullcache restarted on an empty directory.
func (b *bench) herdRound(ctx context.Context, im *image, n int, into *herdSamples) error {
	b.restartPullcache(ctx)
	if b.pc == nil {
		return errNotRunning
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	l := im.Layers[0]
	u := blobURL(b.pc.base, im.Repo, l.Digest)
	b.up.counts.reset()
	cpu0, err := processCPU(b.pc.proc.pid())
	if err != nil {
		return err
	}
	start := time.Now()
	if _, err := fetchManifest(ctx, b.client, fmt.Sprintf("%s/v2/%s/manifests/%s", b.pc.base, im.Repo, im.Tag), im.ManifestDigest); err != nil {
		return err
	}
	if _, err := together(ctx, n, func(ctx context.Context, i int) error {
		return fetchBlob(ctx, b.client, u, l.Size, l.Digest, i == 0)
	}); err != nil {
		return fmt.Errorf("herd: %w", err)
	}
	herd := time.Since(start)
	gets := b.up.counts.blobGetsFor([]string{l.Digest})[0]
	cpu1, err := processCPU(b.pc.proc.pid())
	if err != nil {
		return err
	}
	warm, err := together(ctx, n, func(ctx context.Context, i int) error {
		return fetchBlob(ctx, b.client, u, l.Size, l.Digest, i == 0)
	})
	if err != nil {
		return fmt.Errorf("warm fan-out: %w", err)
	}
	cpu2, err := processCPU(b.pc.proc.pid())
	if err != nil {
		return err
	}
	into.herdCPU = append(into.herdCPU, cpu1-cpu0)
	into.warmCPU = append(into.warmCPU, cpu2-cpu1)
	into.herd = append(into.herd, herd.Seconds())
	into.warm = append(into.warm, warm.Seconds())
	into.gets = append(into.gets, gets)
	return nil
}

// directPull times one pull of im (manifest, then its single layer)
// straight from the counting proxy.
func (b *bench) directPull(ctx context.Context, im *image) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	l := im.Layers[0]
	start := time.Now()
	if _, err := fetchManifest(ctx, b.client, fmt.Sprintf("%s/v2/%s/manifests/%s", b.up.url, im.Repo, im.Tag), im.ManifestDigest); err != nil {
		return 0, err
	}
	if err := fetchBlob(ctx, b.client, blobURL(b.up.url, im.Repo, l.Digest), l.Size, l.Digest, true); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// intsText prints counts as "1, 1, 1".
func intsText(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	if len(s) == 0 {
		return "–"
	}
	return strings.Join(s, ", ")
}
