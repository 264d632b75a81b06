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
	"time"
)

// Row 8: warm small-blob throughput (row 2's load) while eviction runs.
// The same wrk load runs three times on a fresh pullcache each: quiet;
// while churn images are pulled cold, one every churnInterval, through an
// unbounded pullcache; and while the very same pulls go through a
// pullcache bounded so tightly that every pull evicts. Every churn pull is
// cold in both busy runs (each starts on an empty directory), so they do
// the same upstream, hashing and writing work, and the only difference is
// eviction: the row is the bounded busy req/s over the unbounded busy
// req/s. The warm image is pinned, so it is the eviction of the others
// that runs, not a miss.
func (b *bench) rowEvictChurn(ctx context.Context) {
	im := b.im.small[0]
	l := im.Layers[0]
	r := b.rep.add(&row{id: "8", workload: fmt.Sprintf("warm %s blob (wrk -t2 -c8) while eviction runs", sizeName(l.Size)),
		metric: "req/s", unit: "%.0f", baseline: "the same churn without eviction", target: target{"≥", 0.9, "×"}})
	r.nginx.text, r.ref.text = "–", "–"
	defer b.restartPullcache(ctx)
	bound := 12*mib + im.size() + 3*b.im.churn[0].size()
	quiet, err := b.churnRun(ctx, 0, false)
	var unbounded, bounded churnResult
	if err == nil {
		unbounded, err = b.churnRun(ctx, 0, true)
	}
	if err == nil {
		bounded, err = b.churnRun(ctx, bound, true)
	}
	if err != nil {
		r.pc.missing = "not measured"
		b.reportErr("row 8", err)
		return
	}
	b.record(&r.pc, "row 8", bounded.reqPerSec, nil)
	r.ratio = ratioOf(r.pc, value(unbounded.reqPerSec))
	// Without an eviction in the bounded run the ratio compares two runs
	// that did the same work: it says nothing about eviction.
	r.needs = []need{{name: "evictions", c: value(float64(bounded.evicted)), t: target{"≥", 1, ""}}}
	r.note = fmt.Sprintf("same churn unbounded %.0f req/s (%d cold pulls, %d evictions); bounded to %s: %d cold pulls, %d images evicted; quiet %.0f req/s",
		unbounded.reqPerSec, unbounded.pulls, unbounded.evicted, sizeName(bound), bounded.pulls, bounded.evicted, quiet.reqPerSec)
}

// churnInterval paces row 8's cold pulls.
const churnInterval = 250 * time.Millisecond

type churnResult struct {
	reqPerSec      float64
	pulls, evicted int64
}

// churnRun measures row 2's load on a fresh pullcache (bounded to maxSize
// bytes when it is not 0), with the warm image pinned, and with churn
// pulls running when churn is set.
func (b *bench) churnRun(ctx context.Context, maxSize int64, churn bool) (churnResult, error) {
	var res churnResult
	var args []string
	if maxSize > 0 {
		args = []string{"--max-size", strconv.FormatInt(maxSize, 10)}
	}
	if err := b.restartPullcacheWith(ctx, args...); err != nil {
		return res, err
	}
	im := b.im.small[0]
	u, err := b.warmURL(ctx, sidePullcache, im, im.Layers[0])
	if err == nil {
		err = b.pin(ctx, "docker.io/"+im.Repo+":"+im.Tag)
	}
	if err != nil {
		return res, err
	}
	before, err := b.evictions(ctx)
	if err != nil {
		return res, err
	}
	stop := make(chan struct{})
	var pulls atomic.Int64
	var wg sync.WaitGroup
	if churn {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.churn(ctx, stop, &pulls)
		}()
	}
	load := wrkLoad{threads: 2, conns: 8, dur: b.cfg.dur}
	out, _, err := b.wrkWithCPU(ctx, sidePullcache, load, u)
	close(stop)
	wg.Wait()
	if err != nil {
		return res, err
	}
	after, err := b.evictions(ctx)
	res.reqPerSec, res.pulls, res.evicted = out.reqPerSec(), pulls.Load(), after-before
	return res, err
}

// churn pulls the churn images in order, one every churnInterval on a
// fixed schedule (a late pull does not shift the ones after it), until
// stop closes or every image has been pulled once.
func (b *bench) churn(ctx context.Context, stop <-chan struct{}, pulls *atomic.Int64) {
	t := time.NewTicker(churnInterval)
	defer t.Stop()
	for _, c := range b.im.churn {
		if err := pullImage(ctx, b.client, b.pc.base, c, false); err != nil {
			b.logf("row 8 churn: %v", err)
		}
		pulls.Add(1)
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
	b.logf("row 8: the churn ran out of images before wrk ended; raise churnImages")
}

// restartPullcacheWith replaces pullcache with one on an empty data
// directory, started with args added to its command line.
func (b *bench) restartPullcacheWith(ctx context.Context, args ...string) error {
	b.pc.stopAndClean()
	b.pc = nil
	if b.pcBin == "" {
		return errNotRunning
	}
	pc, err := b.l.startPullcache(ctx, b.pcBin, b.up.url, args...)
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

// evictions reads pullcache_evictions_total from the metrics; a figure it
// cannot read is an error, not zero, so row 8 says "not measured".
func (b *bench) evictions(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.pc.base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "pullcache_evictions_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("/metrics has no pullcache_evictions_total (%v)", sc.Err())
}
