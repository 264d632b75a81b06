package cache

import (
	"bytes"
	"context"
	"testing"
)

func TestFillsListsFillsInFlight(t *testing.T) {
	s := openStore(t, t.TempDir())
	blob := bytes.Repeat([]byte("x"), 1000)
	d := digestOf(blob)
	src := newPipeSource(int64(len(blob)))
	f, _, err := s.StartFill(d, int64(len(blob)), "docker.io/library/app", src.open)
	if err != nil {
		t.Fatal(err)
	}
	<-src.opened
	rd, err := f.NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if _, err := src.w.Write(blob[:500]); err != nil {
		t.Fatal(err)
	}
	readN(t, rd, 499) // the fill has written at least 500 bytes now
	fills := s.Fills()
	if len(fills) != 1 {
		t.Fatalf("fills %+v, want one", fills)
	}
	got := fills[0]
	if got.Digest != d {
		t.Errorf("digest %s", got.Digest)
	}
	if got.Origin != "docker.io/library/app" {
		t.Errorf("origin %q", got.Origin)
	}
	if got.Written != 500 {
		t.Errorf("written %d, want 500", got.Written)
	}
	if got.Size != 1000 {
		t.Errorf("size %d, want 1000", got.Size)
	}
	if got.Started.IsZero() {
		t.Error("no start time")
	}
	src.w.Write(blob[500:])
	src.w.Close()
	<-f.Done()
	if fills := s.Fills(); len(fills) != 0 {
		t.Errorf("a committed fill is still listed: %+v", fills)
	}
}
