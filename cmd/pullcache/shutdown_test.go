package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullcache/pullcache/config"
	"github.com/pullcache/pullcache/health"
)

// A signal drains the admin socket alongside the main listener, within
// the one shutdown_grace: a request that never ends on the socket is cut
// when the grace runs out, not after a longer wait of its own.
func TestAdminSocketDrainsWithinShutdownGrace(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cfg := config.Default()
	cfg.Data = t.TempDir()
	grace := 300 * time.Millisecond
	cfg.ShutdownGrace = config.Duration(grace)
	store, err := openStore(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	started := make(chan struct{})
	endless := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	})
	stop, err := startAdmin(cfg, store, "", endless, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop(context.Background())
	got := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: newSocketTransport(adminSocket(cfg.Data))}).Get("http://pullcache/v2/")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		got <- err
	}()
	select {
	case <-started:
	case err := <-got:
		t.Fatalf("the request ended before the drain: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the request on the admin socket never started")
	}

	ready, err := health.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.NotFoundHandler()}
	served := make(chan struct{})
	go func() { defer close(served); _ = hs.Serve(ln) }()
	start := time.Now()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		drain(context.Background(), hs, drainer{ready, grace, []func(context.Context){stop}}, log)
	}()
	// Far below the 30 s the socket once had of its own.
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("the drain still waits on the admin socket after 10 s")
	}
	<-served
	took := time.Since(start)
	if took < grace {
		t.Errorf("the drain took %s: it cut the request before the grace of %s", took, grace)
	}
	select {
	case err := <-got:
		if err == nil {
			t.Error("the endless request ended cleanly: the socket was not closed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the endless request was never cut")
	}
	if _, err := os.Stat(adminSocket(cfg.Data)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket file is left after the drain: %v", err)
	}
}
