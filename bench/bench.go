package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// config is what one run measures; defaults come from fullConfig and
// quickConfig.
type config struct {
	quick        bool
	pullcacheBin string        // prebuilt pullcache; empty builds ./cmd/pullcache
	skipInstall  bool          // do not run scripts/install-test-deps.sh
	keep         bool          // keep the temporary directory (logs, data)
	dur          time.Duration // wrk duration per measurement
	clients      int           // concurrent clients in rows 5 and 6
	reps         int           // rounds per server in rows 1-4 (median)
	bigSize      int64         // row 1 and 4 layer
	smallSize    int64         // row 2 layers
	multiSizes   []int64       // row 5 layers
	hugeSize     int64         // row 6 layer
	wanMBps      float64       // upstream link rate in row 5, MB/s
	herdSize     int64         // row 7 layer
	herdClients  []int         // row 7 herd sizes
	herdMBps     float64       // upstream link rate in row 7, MB/s
	churnImages  int           // row 8: images pulled cold, one after another
	churnSize    int64         // row 8: the layer of each of them
	only         []int         // rows to run (1-8); empty runs all
}

const mib = 1 << 20

func fullConfig() config {
	return config{
		dur:         8 * time.Second,
		clients:     32,
		reps:        3,
		bigSize:     200 * mib,
		smallSize:   600 * 1000,
		multiSizes:  []int64{5 * mib, 7 * mib, 9 * mib, 11 * mib, 13 * mib, 15 * mib, 18 * mib, 20 * mib},
		hugeSize:    1024 * mib,
		wanMBps:     50,
		herdSize:    100 * mib,
		herdClients: []int{1, 8, 32, 128},
		herdMBps:    25,
		churnImages: 48,
		churnSize:   4 * mib,
	}
}

func quickConfig() config {
	return config{
		quick:       true,
		dur:         time.Second,
		clients:     4,
		reps:        1,
		bigSize:     8 * mib,
		smallSize:   600 * 1000,
		multiSizes:  []int64{1 * mib, 2 * mib, 1 * mib, 2 * mib},
		hugeSize:    64 * mib,
		wanMBps:     50,
		herdSize:    8 * mib,
		herdClients: []int{1, 4},
		herdMBps:    25,
		churnImages: 12,
		churnSize:   mib / 2,
	}
}

// images the run pushes to the upstream.
type images struct {
	big, multi, huge, herd *image
	small                  []*image
	churn                  []*image // row 8
}

// bench holds the state of one run: the servers, the images and the report.
type bench struct {
	cfg      config
	tools    tools
	l        *launcher
	client   *http.Client
	up       *upstreamProxy
	upstream *server // the registry behind up
	im       images
	script   string // wrk report script
	pcBin    string // empty when pullcache could not be built
	nginx    *server
	pc       *server
	ref      *server
	rep      *report
	progress io.Writer
}

// run does a whole benchmark and returns its report. Every process it
// starts is stopped before it returns, whatever the outcome.
func run(ctx context.Context, cfg config, progress io.Writer) (*report, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	if !cfg.skipInstall {
		if err := installDeps(ctx, root, progress); err != nil {
			return nil, err
		}
	}
	t, err := findTools(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pullcache-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	if cfg.keep {
		fmt.Fprintf(progress, "bench: keeping %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	procs := &procSet{}
	defer procs.stopAll()
	startLoad := loadAverage()

	mode := "full"
	if cfg.quick {
		mode = "quick"
	}
	b := &bench{
		cfg:      cfg,
		tools:    t,
		l:        &launcher{tools: t, dir: dir, procs: procs},
		client:   &http.Client{Transport: newTransport()},
		rep:      &report{mode: mode, machine: machineInfo(ctx, t)},
		progress: progress,
	}
	defer b.client.CloseIdleConnections()
	defer b.closeUpstreamProxy()
	if err := b.setup(ctx, root); err != nil {
		return b.rep, err
	}
	b.measureAll(ctx)
	// The load average tells readers whether other work shared the machine.
	b.rep.machine = append(b.rep.machine, "load average at start / end of the run: "+startLoad+" / "+loadAverage())
	return b.rep, ctx.Err()
}

// closeUpstreamProxy stops the counting proxy if setup got to start it.
func (b *bench) closeUpstreamProxy() {
	if b.up != nil {
		b.up.close()
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "bench: "+format+"\n", args...)
}

// setup builds pullcache, generates and pushes the images and starts every
// server. Only a failure of pullcache is tolerated: its column then reads
// "not measured" and the anchors are still measured.
func (b *bench) setup(ctx context.Context, root string) error {
	if _, err := mkdirs(b.l.dir, "logs", "blobs", "bin"); err != nil {
		return err
	}
	b.pcBin = b.cfg.pullcacheBin
	if b.pcBin == "" {
		b.logf("building ./cmd/pullcache")
		bin, err := buildPullcache(ctx, b.tools, root, filepath.Join(b.l.dir, "bin"))
		if err != nil {
			b.rep.errorf("pullcache not measured: %v", err)
		}
		b.pcBin = bin
	}
	script, err := writeWrkScript(b.l.dir)
	if err != nil {
		return err
	}
	b.script = script
	if err := b.makeImages(filepath.Join(b.l.dir, "blobs")); err != nil {
		return err
	}
	if err := b.startUpstream(ctx); err != nil {
		return err
	}
	return b.startServers(ctx)
}

// makeImages generates every image's blobs into blobDir.
func (b *bench) makeImages(blobDir string) error {
	start := time.Now()
	specs := []imageSpec{
		{"library/big", []int64{b.cfg.bigSize}},
		{"library/multi", b.cfg.multiSizes},
		{"library/huge", []int64{b.cfg.hugeSize}},
		{"library/herd", []int64{b.cfg.herdSize}},
		{"library/small1", []int64{b.cfg.smallSize, b.cfg.smallSize + 4096}},
		{"library/small2", []int64{b.cfg.smallSize + 8192, b.cfg.smallSize + 12288}},
		{"library/small3", []int64{b.cfg.smallSize + 16384, b.cfg.smallSize + 20480}},
	}
	for i := range b.cfg.churnImages {
		specs = append(specs, imageSpec{fmt.Sprintf("library/churn%02d", i), []int64{b.cfg.churnSize}})
	}
	built := make([]*image, len(specs))
	for i, s := range specs {
		im, err := buildImage(blobDir, s)
		if err != nil {
			return err
		}
		built[i] = im
	}
	b.im = images{big: built[0], multi: built[1], huge: built[2], herd: built[3], small: built[4:7], churn: built[7:]}
	b.logf("generated %d images in %s", len(built), time.Since(start).Round(time.Millisecond))
	return nil
}

// all returns every image.
func (im images) all() []*image {
	return append(append([]*image{im.big, im.multi, im.huge, im.herd}, im.small...), im.churn...)
}

// startUpstream starts the upstream registry, pushes the images to it and
// puts the counting proxy in front of it.
func (b *bench) startUpstream(ctx context.Context) error {
	root, err := b.l.freshDir("upstream-root")
	if err != nil {
		return err
	}
	upstream, err := b.l.startRegistry(ctx, "upstream", root, "")
	if err != nil {
		return err
	}
	b.upstream = upstream
	start := time.Now()
	for _, im := range b.im.all() {
		if err := pushImage(ctx, b.client, upstream.base, im); err != nil {
			return err
		}
	}
	b.logf("pushed images to the upstream in %s", time.Since(start).Round(time.Millisecond))
	b.up, err = startUpstreamProxy(upstream.base, filepath.Join(b.l.dir, "logs", "counting-proxy.log"))
	return err
}

// startServers starts nginx, pullcache and the reference proxy.
func (b *bench) startServers(ctx context.Context) error {
	var err error
	if b.nginx, err = b.l.startNginx(ctx, filepath.Join(b.l.dir, "blobs")); err != nil {
		return err
	}
	if b.ref, err = b.l.startProxyRegistry(ctx, b.up.url); err != nil {
		return err
	}
	b.restartPullcache(ctx)
	return nil
}

// restartPullcache replaces the running pullcache (if any) with one on an
// empty data directory. On failure b.pc is nil and the error is reported.
func (b *bench) restartPullcache(ctx context.Context) {
	b.pc.stopAndClean()
	b.pc = nil
	if b.pcBin == "" {
		return
	}
	pc, err := b.l.startPullcache(ctx, b.pcBin, b.up.url)
	if err != nil {
		b.rep.errorf("start pullcache: %v", err)
		return
	}
	b.pc = pc
}

// restartRef replaces the reference proxy with one on an empty root.
func (b *bench) restartRef(ctx context.Context) error {
	b.ref.stopAndClean()
	ref, err := b.l.startProxyRegistry(ctx, b.up.url)
	b.ref = ref
	return err
}
