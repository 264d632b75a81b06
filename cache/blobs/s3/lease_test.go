package s3

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestLeaseHeldRenewedReleased(t *testing.T) {
	leases := startVersitygw(t).tier(t).Leases(0)
	ctx := t.Context()
	a, err := leases.Acquire(ctx, "fill/sha256:aa", "http://m1:5000")
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(a.Until()); left <= 0 || left > DefaultLeasePeriod {
		t.Errorf("a new lease lasts %s, want within the default %s", left, DefaultLeasePeriod)
	}
	_, err = leases.Acquire(ctx, "fill/sha256:aa", "http://m2:5000")
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("acquire of a held lease: %v, want a HeldError", err)
	}
	if held.Holder != "http://m1:5000" {
		t.Errorf("held by %q, want http://m1:5000", held.Holder)
	}
	if !errors.Is(err, ErrHeld) {
		t.Errorf("%v is not ErrHeld", err)
	}
	if held.Remaining <= 0 {
		t.Errorf("remaining %s, want more than 0", held.Remaining)
	}
	if err := a.Renew(ctx); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatalf("release: %v", err)
	}
	b, err := leases.Acquire(ctx, "fill/sha256:aa", "http://m2:5000")
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseExpires has a holder stop renewing: another takes the lease over
// once its period passed by the server's clock, not before, and the old
// holder learns it lost it.
func TestLeaseExpires(t *testing.T) {
	const period = 2 * time.Second
	leases := startVersitygw(t).tier(t).Leases(period)
	ctx := t.Context()
	a, err := leases.Acquire(ctx, "gc", "m1")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var b *Lease
	tries := pollUntil(t, 15*time.Second, func() int {
		b, err = leases.Acquire(ctx, "gc", "m2")
		if err != nil && !errors.Is(err, ErrHeld) {
			t.Fatal(err)
		}
		if b != nil {
			return 1
		}
		return 0
	})
	if tries == 0 {
		t.Fatalf("the lease was not taken over within 15 s: %v", err)
	}
	if waited := time.Since(start); waited < period-time.Second {
		t.Errorf("taken over after %s, before its period of %s", waited, period)
	}
	if err := a.Renew(ctx); !errors.Is(err, ErrLost) {
		t.Errorf("renew by the old holder: %v, want ErrLost", err)
	}
	if err := a.Release(ctx); !errors.Is(err, ErrLost) {
		t.Errorf("release by the old holder: %v, want ErrLost", err)
	}
	if err := b.Renew(ctx); err != nil {
		t.Errorf("renew by the new holder: %v", err)
	}
}

// TestLeaseOneOfMany has members race for one lease: exactly one gets it,
// every other is told who holds it.
func TestLeaseOneOfMany(t *testing.T) {
	leases := startVersitygw(t).tier(t).Leases(0)
	const members = 8
	var wg sync.WaitGroup
	got := make([]*Lease, members)
	errs := make([]error, members)
	for i := range members {
		wg.Go(func() { got[i], errs[i] = leases.Acquire(t.Context(), "fill/sha256:bb", fmt.Sprintf("m%d", i)) })
	}
	wg.Wait()
	var winner string
	for i := range members {
		if got[i] != nil {
			if winner != "" {
				t.Errorf("both %s and %s hold the lease", winner, got[i].Holder())
			}
			winner = got[i].Holder()
		}
	}
	if winner == "" {
		t.Fatalf("no member got the lease: %v", errs)
	}
	for i, err := range errs {
		var held *HeldError
		if got[i] == nil && !errors.As(err, &held) {
			t.Errorf("m%d: %v, want a HeldError", i, err)
			continue
		}
		if got[i] == nil && held.Holder != winner {
			t.Errorf("m%d told the holder is %s, want %s", i, held.Holder, winner)
		}
	}
}

// TestLeaseSameHolder lets a member that restarted take back its own lease
// at once; the lease it held before is then lost.
func TestLeaseSameHolder(t *testing.T) {
	leases := startVersitygw(t).tier(t).Leases(0)
	ctx := t.Context()
	old, err := leases.Acquire(ctx, "gc", "m1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := leases.Acquire(ctx, "gc", "m1")
	if err != nil {
		t.Fatalf("acquire by the same holder: %v", err)
	}
	if err := old.Renew(ctx); !errors.Is(err, ErrLost) {
		t.Errorf("renew of the superseded lease: %v, want ErrLost", err)
	}
	if err := again.Release(ctx); err != nil {
		t.Error(err)
	}
}

// TestLeaseKeep keeps a lease past several periods, then loses it when its
// object is removed under it.
func TestLeaseKeep(t *testing.T) {
	// Renewed every second: a slow machine has two seconds, and the second
	// of slack, before the lease would expire.
	const period = 3 * time.Second
	tier := startVersitygw(t).tier(t)
	leases := tier.Leases(period)
	a, err := leases.Acquire(t.Context(), "gc", "m1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	kept := make(chan error, 1)
	go func() { kept <- a.Keep(ctx) }()
	// For two periods, the lease stays held.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(2 * period); time.Now().Before(deadline); <-tick.C {
		if _, err := leases.Acquire(t.Context(), "gc", "m2"); !errors.Is(err, ErrHeld) {
			t.Fatalf("acquire while kept: %v, want ErrHeld", err)
		}
	}
	cancel()
	if err := <-kept; err != nil {
		t.Errorf("keep after its context ended: %v", err)
	}
	go func() { kept <- a.Keep(t.Context()) }()
	if err := tier.delete(t.Context(), leases.key("gc"), ""); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-kept:
		if !errors.Is(err, ErrLost) {
			t.Errorf("keep of a removed lease: %v, want ErrLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("keep of a removed lease still runs after 10 s")
	}
}

// TestLeaseUnreadable treats a lease object not written by Acquire as held
// for one period from its writing, then taken over: a stray object does
// not block the work forever.
func TestLeaseUnreadable(t *testing.T) {
	const period = time.Second
	tier := startVersitygw(t).tier(t)
	leases := tier.Leases(period)
	if _, err := tier.put(t.Context(), leases.key("gc"), []byte("not json"), ""); err != nil {
		t.Fatal(err)
	}
	var le *Lease
	var err error
	got := pollUntil(t, 10*time.Second, func() int {
		le, err = leases.Acquire(t.Context(), "gc", "m1")
		if err != nil && !errors.Is(err, ErrHeld) {
			t.Fatal(err)
		}
		if le == nil {
			return 0
		}
		return 1
	})
	if got == 0 {
		t.Fatalf("a stray lease object still blocks after 10 s: %v", err)
	}
	if err := le.Release(t.Context()); err != nil {
		t.Error(err)
	}
}
