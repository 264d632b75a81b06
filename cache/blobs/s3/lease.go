package s3

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pullcache/pullcache/cache/blobs"
)

// DefaultLeasePeriod is how long a lease lasts after its holder last wrote
// it, when Leases is given no period.
const DefaultLeasePeriod = 30 * time.Second

// httpDateSlack covers the whole-second resolution of the times a lease's
// expiry is computed from (Last-Modified and Date), so a lease never
// expires early by rounding.
const httpDateSlack = time.Second

// maxAcquireTries bounds Acquire's loop of read, then conditional write:
// each turn loses only to another member's successful write.
const maxAcquireTries = 4

// ErrHeld is an Acquire of a lease another holder has and renews; the error
// is a *HeldError naming it.
var ErrHeld = errors.New("lease held")

// ErrLost is a Renew or Release of a lease another holder took over (or
// that is gone): its work may now be done twice, and should stop.
var ErrLost = errors.New("lease lost")

// HeldError is the ErrHeld of Acquire, with the holder.
type HeldError struct {
	Name, Holder string
	// Remaining is how long the lease lasts unless renewed, by the
	// bucket's clock.
	Remaining time.Duration
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("lease %s held by %s for %s more", e.Name, e.Holder, e.Remaining.Round(time.Second))
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Leases are named objects with an expiry, for work one member at a time
// should do: one fill per blob even when members disagree about
// membership, one garbage collection. A lease is created with
// If-None-Match: *, renewed and taken over with If-Match, so the bucket
// decides every race. It expires Period after its holder last wrote it, by
// the bucket's clock (Last-Modified against the Date of the read), so
// members' clocks need not agree.
type Leases struct {
	t      *Tier
	period time.Duration
}

// Leases returns the tier's leases lasting period after each renewal
// (DefaultLeasePeriod when 0). Holders renew well within it, every third of
// it for instance.
func (t *Tier) Leases(period time.Duration) *Leases {
	if period <= 0 {
		period = DefaultLeasePeriod
	}
	return &Leases{t: t, period: period}
}

// Lease is one held lease. Its methods are for one goroutine at a time.
type Lease struct {
	l            *Leases
	name, holder string
	record       []byte // what is written at each renewal
	etag         string
	until        time.Time // by this machine's clock, counted from before the write
}

// leaseRecord is a lease's object. Period is the writer's, so every reader
// computes the same expiry whatever its own setting. Token is new at each
// acquisition: S3's ETag hashes the content, so without it a holder taking
// back its lease would write the ETag of an earlier acquisition, and that
// earlier Lease would still pass If-Match.
type leaseRecord struct {
	Holder   string `json:"holder"`
	PeriodMS int64  `json:"period_ms"`
	Token    string `json:"token"`
}

func (l *Leases) key(name string) string { return l.t.prefix + "leases/" + name }

// record is a new acquisition's record for holder.
func (l *Leases) record(holder string) []byte {
	b, _ := json.Marshal(leaseRecord{Holder: holder, PeriodMS: l.period.Milliseconds(), Token: rand.Text()})
	return b
}

// Acquire takes lease name for holder (a member's URL, say): it creates the
// lease, or takes over one expired or already holder's (a member that
// restarted). Another holder's live lease is a *HeldError.
func (l *Leases) Acquire(ctx context.Context, name, holder string) (*Lease, error) {
	if name == "" || holder == "" {
		return nil, errors.New("s3: a lease needs a name and a holder")
	}
	key := l.key(name)
	for range maxAcquireTries {
		start, rec := time.Now(), l.record(holder)
		etag, err := l.t.put(ctx, key, rec, "")
		if err == nil {
			return &Lease{l: l, name: name, holder: holder, record: rec, etag: etag, until: start.Add(l.period)}, nil
		}
		if !errors.Is(err, blobs.ErrExists) {
			return nil, err
		}
		lease, err := l.takeOver(ctx, name, holder)
		if err == nil || errors.Is(err, ErrHeld) {
			return lease, err
		}
		if !errors.Is(err, ErrChanged) && !errors.Is(err, blobs.ErrNotFound) {
			return nil, err
		}
		// Another write or a release came between read and write: again.
	}
	return nil, fmt.Errorf("s3: lease %s: still contended after %d tries", name, maxAcquireTries)
}

// takeOver reads lease name and takes it if it expired or is holder's own.
func (l *Leases) takeOver(ctx context.Context, name, holder string) (*Lease, error) {
	key := l.key(name)
	obj, err := l.t.get(ctx, key)
	if err != nil {
		return nil, err
	}
	var rec leaseRecord
	if err := json.Unmarshal(obj.Data, &rec); err != nil || rec.Holder == "" {
		// Not written by Acquire: held by no one, expiring as ours would.
		rec = leaseRecord{Holder: "(unreadable)", PeriodMS: l.period.Milliseconds()}
	}
	remaining := obj.Modified.Add(time.Duration(rec.PeriodMS)*time.Millisecond + httpDateSlack).Sub(obj.ServerTime)
	if rec.Holder != holder && remaining > 0 {
		return nil, &HeldError{Name: name, Holder: rec.Holder, Remaining: remaining}
	}
	start, newRec := time.Now(), l.record(holder)
	etag, err := l.t.put(ctx, key, newRec, obj.ETag)
	if err != nil {
		return nil, err
	}
	return &Lease{l: l, name: name, holder: holder, record: newRec, etag: etag, until: start.Add(l.period)}, nil
}

// Holder is who holds the lease.
func (le *Lease) Holder() string { return le.holder }

// Until is when the lease expires unless renewed, by this machine's clock,
// counted from before its last write reached the bucket (so never late).
func (le *Lease) Until() time.Time { return le.until }

// Renew extends the lease by its period from now, if it is still this
// holder's: ErrLost when another took it over or it is gone.
func (le *Lease) Renew(ctx context.Context) error {
	start := time.Now()
	etag, err := le.l.t.put(ctx, le.l.key(le.name), le.record, le.etag)
	if errors.Is(err, ErrChanged) || errors.Is(err, blobs.ErrNotFound) {
		return fmt.Errorf("%w: %s: %w", ErrLost, le.name, err)
	}
	if err != nil {
		return err
	}
	le.etag, le.until = etag, start.Add(le.l.period)
	return nil
}

// Release ends the lease when the work is done, so another may take it at
// once: it deletes the lease only if it is still this holder's (If-Match),
// else reports ErrLost.
func (le *Lease) Release(ctx context.Context) error {
	err := le.l.t.delete(ctx, le.l.key(le.name), le.etag)
	if errors.Is(err, ErrChanged) {
		return fmt.Errorf("%w: %s: %w", ErrLost, le.name, err)
	}
	return err
}

// Keep renews the lease every third of its period until ctx ends (it then
// returns nil and the lease is still held: Release it) or the lease is lost
// (ErrLost: stop the work it guards). A renewal that fails otherwise, the
// bucket out of reach, is tried again at the next tick until the period
// has passed without one: another member may then take the lease, so that
// is ErrLost too. Run it in a goroutine of its own and wait for it to
// return before Release.
func (le *Lease) Keep(ctx context.Context) error {
	tick := time.NewTicker(le.l.period / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		err := le.Renew(ctx)
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.Is(err, ErrLost):
			return err
		case time.Now().After(le.until):
			return fmt.Errorf("%w: %s: not renewed within its period: %w", ErrLost, le.name, err)
		}
	}
}
