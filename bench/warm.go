package main

import (
	"context"
	"fmt"
	"strings"
)

// warmURL primes s with bl of im (manifest by tag, then the blob, checked
// against its digest) and returns the blob's URL on s.
func (b *bench) warmURL(ctx context.Context, s side, im *image, bl blob) (string, error) {
	srv := b.serverFor(s)
	if srv == nil {
		return "", errNotRunning
	}
	if s == sideNginx {
		u := srv.base + nginxBlobRoute + bl.Digest
		return u, fetchBlob(ctx, b.client, u, bl.Size, bl.Digest, true)
	}
	tagURL := fmt.Sprintf("%s/v2/%s/manifests/%s", srv.base, im.Repo, im.Tag)
	if _, err := fetchManifest(ctx, b.client, tagURL, im.ManifestDigest); err != nil {
		return "", fmt.Errorf("prime: %w", err)
	}
	u := blobURL(srv.base, im.Repo, bl.Digest)
	if err := fetchBlob(ctx, b.client, u, bl.Size, bl.Digest, true); err != nil {
		return "", fmt.Errorf("prime: %w", err)
	}
	return u, nil
}

// wrkWithCPU runs wrk against url and returns its result and the CPU
// seconds the server on that side used meanwhile.
func (b *bench) wrkWithCPU(ctx context.Context, s side, load wrkLoad, url string) (wrkResult, float64, error) {
	pid := b.serverFor(s).proc.pid()
	before, err := serverCPU(pid)
	if err != nil {
		return wrkResult{}, 0, err
	}
	res, err := runWrk(ctx, b.tools, b.script, load, url)
	if err != nil {
		return wrkResult{}, 0, err
	}
	after, err := serverCPU(pid)
	return res, after - before, err
}

// warmSamples are repeated measurements of one side: samples[m][i] is
// metric m in round i.
type warmSamples [][]float64

// warmRounds primes every side with prime (once), then measures each side
// in turn with measure, b.cfg.reps rounds, interleaved so that background
// load that drifts during the run hits every side alike. measure returns
// one value per metric. A side that fails is reported and has fewer samples
// than rounds, which medianCell shows as "not measured".
func (b *bench) warmRounds(ctx context.Context, row string, sides []side,
	prime func(side) (string, error), measure func(side, string) ([]float64, error)) map[side]warmSamples {
	urls := map[side]string{}
	for _, s := range sides {
		u, err := prime(s)
		if err != nil {
			b.reportErr(fmt.Sprintf("row %s %s", row, s), err)
			continue
		}
		urls[s] = u
	}
	out := map[side]warmSamples{}
	for round := range b.cfg.reps {
		for _, s := range sides {
			u, ok := urls[s]
			if !ok {
				continue
			}
			b.logf("row %s: %s, round %d/%d", row, s, round+1, b.cfg.reps)
			vs, err := measure(s, u)
			if err != nil {
				b.reportErr(fmt.Sprintf("row %s %s", row, s), err)
				continue
			}
			if out[s] == nil {
				out[s] = make(warmSamples, len(vs))
			}
			for m, v := range vs {
				out[s][m] = append(out[s][m], v)
			}
		}
	}
	return out
}

// metric returns the median of metric m, or "not measured".
func (w warmSamples) metric(m, want int) cell {
	if m >= len(w) {
		return cell{missing: "not measured"}
	}
	return medianCell(w[m], want)
}

// Row 1: warm big blob, throughput and server CPU per GB.
func (b *bench) rowWarmBig(ctx context.Context) {
	im, l := b.im.big, b.im.big.Layers[0]
	wl := fmt.Sprintf("warm %s blob (wrk -t2 -c4), median of %d", sizeName(l.Size), b.cfg.reps)
	thr := b.rep.add(&row{id: "1a", workload: wl, metric: "throughput, MB/s", unit: "%.0f",
		baseline: "nginx", target: target{"≥", 0.95, "×"}})
	cpu := b.rep.add(&row{id: "1b", workload: wl, metric: "server CPU s per GB served", unit: "%.3f",
		baseline: "nginx", target: target{"≤", 1.1, "×"}})
	load := wrkLoad{threads: 2, conns: 4, dur: b.cfg.dur}
	samples := b.warmRounds(ctx, "1", allSides(),
		func(s side) (string, error) { return b.warmURL(ctx, s, im, l) },
		func(s side, u string) ([]float64, error) {
			res, sec, err := b.wrkWithCPU(ctx, s, load, u)
			return []float64{res.bytesPerSec() / 1e6, sec / (float64(res.bytes) / 1e9)}, err
		})
	for _, s := range allSides() {
		*thr.at(s) = samples[s].metric(0, b.cfg.reps)
		*cpu.at(s) = samples[s].metric(1, b.cfg.reps)
	}
	thr.ratio = ratioOf(thr.pc, thr.nginx)
	cpu.ratio = ratioOf(cpu.pc, cpu.nginx)
	thr.note = "ref proxy " + ratioOf(thr.ref, thr.nginx).format("%.2f×") + " nginx"
	cpu.note = "ref proxy " + ratioOf(cpu.ref, cpu.nginx).format("%.2f×") + " nginx"
}

// Row 2: warm small blob, requests per second with 8 connections.
func (b *bench) rowWarmSmall(ctx context.Context) {
	im := b.im.small[0]
	l := im.Layers[0]
	r := b.rep.add(&row{id: "2", workload: fmt.Sprintf("warm %s blob (wrk -t2 -c8), median of %d", sizeName(l.Size), b.cfg.reps),
		metric: "req/s", unit: "%.0f", baseline: "nginx", target: target{"≥", 1.0, "×"}})
	load := wrkLoad{threads: 2, conns: 8, dur: b.cfg.dur}
	samples := b.warmRounds(ctx, "2", allSides(),
		func(s side) (string, error) { return b.warmURL(ctx, s, im, l) },
		func(s side, u string) ([]float64, error) {
			res, sec, err := b.wrkWithCPU(ctx, s, load, u)
			return []float64{res.reqPerSec(), sec / float64(res.requests) * 1e6}, err
		})
	perReq := make([]string, 0, 3)
	for _, s := range allSides() {
		*r.at(s) = samples[s].metric(0, b.cfg.reps)
		perReq = append(perReq, fmt.Sprintf("%s %s", s, samples[s].metric(1, b.cfg.reps).format("%.0f µs")))
	}
	r.ratio = ratioOf(r.pc, r.nginx)
	r.note = "ref proxy " + ratioOf(r.ref, r.nginx).format("%.2f×") + " nginx"
	b.rep.details = append(b.rep.details, "row 2, server CPU per request (median): "+strings.Join(perReq, ", "))
}

// Row 3: warm manifest by tag and by digest, vs the reference proxy.
func (b *bench) rowManifests(ctx context.Context) {
	im := b.im.small[1]
	load := wrkLoad{threads: 2, conns: 8, dur: b.cfg.dur, headers: []string{"Accept: " + acceptManifests}}
	caches := []side{sidePullcache, sideRef}
	for _, v := range []struct {
		id, by, ref string
		bound       float64
	}{{"3a", "tag", im.Tag, 20}, {"3b", "digest", im.ManifestDigest, 2}} {
		r := b.rep.add(&row{id: v.id, workload: fmt.Sprintf("warm manifest by %s (wrk -t2 -c8), median of %d", v.by, b.cfg.reps),
			metric: "req/s", unit: "%.0f", baseline: "ref", target: target{"≥", v.bound, "×"}})
		r.nginx.text = "–"
		samples := b.warmRounds(ctx, v.id, caches,
			func(s side) (string, error) { return b.warmManifestURL(ctx, s, im, v.ref) },
			func(_ side, u string) ([]float64, error) {
				res, err := runWrk(ctx, b.tools, b.script, load, u)
				return []float64{res.reqPerSec()}, err
			})
		for _, s := range caches {
			*r.at(s) = samples[s].metric(0, b.cfg.reps)
		}
		r.ratio = ratioOf(r.pc, r.ref)
	}
}

// warmManifestURL primes side s with im's manifest and returns its URL by
// ref (tag or digest).
func (b *bench) warmManifestURL(ctx context.Context, s side, im *image, ref string) (string, error) {
	srv := b.serverFor(s)
	if srv == nil {
		return "", errNotRunning
	}
	u := fmt.Sprintf("%s/v2/%s/manifests/%s", srv.base, im.Repo, ref)
	if _, err := fetchManifest(ctx, b.client, u, im.ManifestDigest); err != nil {
		return "", fmt.Errorf("prime: %w", err)
	}
	return u, nil
}
