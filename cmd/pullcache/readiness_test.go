package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/health"
	"github.com/pullcache/pullcache/upstream"
)

// TestStoreStatesAreDegradedNotUnready: a full disk, a read-only index and
// the start-up count are named, but the mirror stays in its Service.
func TestStoreStatesAreDegradedNotUnready(t *testing.T) {
	tests := []struct {
		name       string
		check      func(cache.State) (health.State, string)
		st         cache.State
		want       health.State
		wantReason string
	}{
		{"index writable", indexState, cache.State{Free: 10 << 30, MinFree: 1 << 30}, health.OK, ""},
		{"index read-only", indexState, cache.State{ReadOnly: true}, health.Degraded, "the index is read-only"},
		{"start-up count", indexState, cache.State{Scanning: true}, health.Degraded, "counting the cached blobs"},
		{"read-only named before the count", indexState, cache.State{Scanning: true, ReadOnly: true}, health.Degraded, "read-only"},
		{"disk with room", diskState, cache.State{Free: 10 << 30, MinFree: 1 << 30}, health.OK, ""},
		{"disk below min_free", diskState, cache.State{Free: 1 << 20, MinFree: 1 << 30}, health.Degraded, "1.0 MiB free, below min_free 1.0 GiB"},
		{"disk not asked", diskState, cache.State{Free: -1, MinFree: 1 << 30}, health.OK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := tc.check(tc.st)
			if got != tc.want {
				t.Errorf("state %v, want %v", got, tc.want)
			}
			if !strings.Contains(reason, tc.wantReason) {
				t.Errorf("reason %q does not contain %q", reason, tc.wantReason)
			}
		})
	}
}

func TestUpstreamStateNamesFailingEndpoints(t *testing.T) {
	now := time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)
	down := upstream.EndpointStatus{Host: "registry-1.docker.io", State: upstream.StateFailing, DownUntil: now.Add(10 * time.Second),
		LastError: "connection refused", LastErrorAt: now.Add(-20 * time.Second)}
	recovered := upstream.EndpointStatus{Host: "mirror.gcr.io", State: upstream.StateUp, DownUntil: now.Add(-time.Second), LastOK: now}
	many := make([]upstream.EndpointStatus, 5)
	for i := range many {
		many[i] = down
	}
	tests := []struct {
		name       string
		sts        []upstream.Status
		want       health.State
		wantReason string
	}{
		{"none configured", nil, health.OK, ""},
		{"all answer", []upstream.Status{{Registry: "docker.io", Endpoints: []upstream.EndpointStatus{recovered}}}, health.OK, ""},
		{"one failing", []upstream.Status{{Registry: "docker.io", Endpoints: []upstream.EndpointStatus{down, recovered}}},
			health.Degraded, "docker.io (registry-1.docker.io) failing since 2026-12-07T21:59:40Z: connection refused"},
		{"many failing, three named", []upstream.Status{{Registry: "docker.io", Endpoints: many}}, health.Degraded, "; and 2 more"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := upstreamState(tc.sts)
			if got != tc.want {
				t.Errorf("state %v, want %v", got, tc.want)
			}
			if !strings.Contains(reason, tc.wantReason) {
				t.Errorf("reason %q does not contain %q", reason, tc.wantReason)
			}
			if tc.want == health.OK && reason != "" {
				t.Errorf("reason %q on OK", reason)
			}
		})
	}
}

// TestEndpointsUpLabelsStayBounded: configured registries get a series
// per endpoint; every registry an allow pattern admitted shares one, down
// if any of them is.
func TestEndpointsUpLabelsStayBounded(t *testing.T) {
	up := upstream.EndpointStatus{Host: "registry-1.docker.io", State: upstream.StateUp}
	down := upstream.EndpointStatus{Host: "ghcr.io", State: upstream.StateFailing}
	sts := []upstream.Status{
		{Registry: "docker.io", Endpoints: []upstream.EndpointStatus{up}},
		{Registry: "ghcr.io", Endpoints: []upstream.EndpointStatus{down}},
		{Registry: "a.example.com", Endpoints: []upstream.EndpointStatus{{Host: "a.example.com", State: upstream.StateUp}}},
		{Registry: "b.example.com", Endpoints: []upstream.EndpointStatus{{Host: "b.example.com", State: upstream.StateFailing}}},
	}
	got := endpointsUp(sts, map[string]bool{"docker.io": true, "ghcr.io": true})
	want := map[endpointKey]float64{
		{"docker.io", "registry-1.docker.io"}: 1,
		{"ghcr.io", "ghcr.io"}:                0,
		{"allowed", "allowed"}:                0,
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%v = %v (present %v), want %v", k, g, ok, v)
		}
	}
}
