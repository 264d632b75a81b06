package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// side names a server column of the table.
type side int

const (
	sideNginx side = iota
	sidePullcache
	sideRef
)

func (s side) String() string {
	return [...]string{"nginx", "pullcache", "reference proxy"}[s]
}

func (r *row) at(s side) *cell {
	return [...]*cell{&r.nginx, &r.pc, &r.ref}[s]
}

func (b *bench) serverFor(s side) *server {
	return [...]*server{b.nginx, b.pc, b.ref}[s]
}

// errNotRunning marks a measurement of a server that could not be started.
var errNotRunning = errors.New("server not running")

// opTimeout bounds any single multi-client operation (rows 5 to 7).
const opTimeout = 10 * time.Minute

// measureAll runs the eight rows in order; a failure in one row is reported
// in the table and the run goes on.
func (b *bench) measureAll(ctx context.Context) {
	rows := []func(context.Context){b.rowWarmBig, b.rowWarmSmall, b.rowManifests, b.rowColdPull, b.rowHerd, b.rowMemory, b.rowHerdFanOut, b.rowEvictChurn}
	for i, r := range rows {
		if ctx.Err() != nil {
			return
		}
		if len(b.cfg.only) > 0 && !slices.Contains(b.cfg.only, i+1) {
			continue
		}
		r(ctx)
	}
}

// record stores v in c, or marks c as not measured and reports err.
func (b *bench) record(c *cell, what string, v float64, err error) {
	if err != nil {
		c.missing = "not measured"
		b.reportErr(what, err)
		return
	}
	*c = value(v)
}

// reportErr reports err unless it only says the server is not running,
// which was reported when it failed to start.
func (b *bench) reportErr(what string, err error) {
	if !errors.Is(err, errNotRunning) {
		b.rep.errorf("%s: %v", what, err)
	}
}

// allSides are the three server columns.
func allSides() []side { return []side{sideNginx, sidePullcache, sideRef} }

// medianCell is the median of xs when all want measurements succeeded.
func medianCell(xs []float64, want int) cell {
	if len(xs) == 0 || len(xs) != want {
		return cell{missing: "not measured"}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return value(s[len(s)/2])
}

// sizeName prints a size as MiB or GiB ("200 MiB", "1 GiB"), or kB below
// one MiB.
func sizeName(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.3g GiB", float64(n)/(1<<30))
	case n >= mib:
		return fmt.Sprintf("%.0f MiB", float64(n)/mib)
	default:
		return fmt.Sprintf("%.0f kB", float64(n)/1000)
	}
}
