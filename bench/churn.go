package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Row 8: warm small-blob throughput (row 2's load) while eviction runs:
// the same wrk load on a bounded pullcache, once with nothing else going
// on and once while other images are pulled round after round through a
// bound too small for them, so every round evicts. The warm image is
// pinned, so it is the eviction of the others that runs, not a miss.
func (b *bench) rowEvictChurn(ctx context.Context) {
	im := b.im.small[0]
	l := im.Layers[0]
	r := b.rep.add(&row{id: "8", workload: fmt.Sprintf("warm %s blob (wrk -t2 -c8) while eviction runs", sizeName(l.Size)),
		metric: "req/s", unit: "%.0f", baseline: "pullcache without eviction", target: target{"≥", 0.9, "×"}})
	r.nginx.text, r.ref.text = "–", "–"
	churn := []*image{b.im.big, b.im.multi, b.im.small[1], b.im.small[2]}
	largest := max(b.im.big.size(), b.im.multi.size())
	bound := 12*mib + im.size() + largest*6/5
	if err := b.restartPullcacheBounded(ctx, bound); err != nil {
		r.pc.missing = "not measured"
		b.reportErr("row 8", err)
		return
	}
	defer b.restartPullcache(ctx)
	u, err := b.warmURL(ctx, sidePullcache, im, l)
	if err == nil {
		err = b.pin(ctx, "docker.io/"+im.Repo+":"+im.Tag)
	}
	if err != nil {
		r.pc.missing = "not measured"
		b.reportErr("row 8", err)
		return
	}
	load := wrkLoad{threads: 2, conns: 8, dur: b.cfg.dur}
	quiet, _, err := b.wrkWithCPU(ctx, sidePullcache, load, u)
	if err != nil {
		r.pc.missing = "not measured"
		b.reportErr("row 8", err)
		return
	}
	before := b.evictions(ctx)
	stop := make(chan struct{})
	var rounds atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			for _, c := range churn {
				select {
				case <-stop:
					return
				default:
				}
				if err := pullImage(ctx, b.client, b.pc.base, c, false); err != nil {
					b.logf("row 8 churn: %v", err)
				}
			}
			rounds.Add(1)
		}
	}()
	busy, _, err := b.wrkWithCPU(ctx, sidePullcache, load, u)
	close(stop)
	wg.Wait()
	b.record(&r.pc, "row 8", busy.reqPerSec(), err)
	r.ratio = ratioOf(r.pc, value(quiet.reqPerSec()))
	r.note = fmt.Sprintf("without eviction %.0f req/s; %d churn rounds, %d images evicted meanwhile (bound %s)",
		quiet.reqPerSec(), rounds.Load(), b.evictions(ctx)-before, sizeName(bound))
}

// restartPullcacheBounded replaces pullcache with one on an empty data
// directory bounded to maxSize bytes.
func (b *bench) restartPullcacheBounded(ctx context.Context, maxSize int64) error {
	b.pc.stopAndClean()
	b.pc = nil
	if b.pcBin == "" {
		return errNotRunning
	}
	pc, err := b.l.startPullcache(ctx, b.pcBin, b.up.url, "--max-size", strconv.FormatInt(maxSize, 10))
	b.pc = pc
	return err
}

// pin pins an image on the running pullcache through its admin socket.
func (b *bench) pin(ctx context.Context, name string) error {
	out, err := exec.CommandContext(ctx, b.pcBin, "pin", "--data", b.pc.data, name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pullcache pin %s: %v: %s", name, err, out)
	}
	return nil
}

// evictions reads pullcache_evictions_total from the metrics.
func (b *bench) evictions(ctx context.Context) int64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.pc.base+"/metrics", nil)
	if err != nil {
		return 0
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "pullcache_evictions_total "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
	}
	return 0
}
