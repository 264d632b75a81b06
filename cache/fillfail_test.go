package cache

import (
	"errors"
	"testing"
	"time"
)

func TestFailuresBackOffAndForgetOnSuccess(t *testing.T) {
	fs := newFailures(time.Second)
	d := digestOf([]byte("x"))
	t0 := time.Unix(1_700_000_000, 0)
	broken := errors.New("connection reset")
	steps := []struct {
		at      time.Duration
		end     error // how a fill ended at this time; nil with check only
		note    bool
		blocked bool // whether a new fill is held back right after
	}{
		{0, broken, true, true},
		{999 * time.Millisecond, nil, false, true},
		{time.Second, nil, false, false}, // first backoff over: one retry may run
		{time.Second, broken, true, true},
		{2*time.Second + 999*time.Millisecond, nil, false, true}, // second backoff is 2s
		{3 * time.Second, nil, false, false},
		{3 * time.Second, nil, true, false}, // the retry succeeded
		{3 * time.Second, ErrSourceNotFound, true, false},
		{3 * time.Second, errClosing, true, false},
	}
	for i, st := range steps {
		now := t0.Add(st.at)
		if st.note {
			fs.note(d, "r", st.end, now)
		}
		rf, blocked := fs.recent(d, "r", now)
		if blocked != st.blocked {
			t.Fatalf("step %d (%s): blocked = %v, want %v", i, st.at, blocked, st.blocked)
		}
		if blocked && !errors.Is(rf, broken) {
			t.Errorf("step %d: %v does not wrap the fill's error", i, rf)
		}
		if _, other := fs.recent(d, "other", now); other {
			t.Errorf("step %d: another origin is held back", i)
		}
	}
}

func TestFailureBackoffIsBounded(t *testing.T) {
	fs := newFailures(time.Second)
	for count, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 40: maxFillBackoff} {
		if got := fs.backoff(count); got != want {
			t.Errorf("backoff after %d failures = %s, want %s", count, got, want)
		}
	}
}
