package s3

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var memBlobMiB = flag.Int("s3.memblob", 96, "size in MiB of the blob TestWriteMemoryBounded streams")

// maxWriteMemory is the most heap one write may hold, whatever the blob's
// size: two parts of the default size and room for the SDK's requests.
const maxWriteMemory = 32 << 20

// TestWriteMemoryBounded streams a blob many parts long into the tier, as
// a fill does, and samples the heap after each write: a write holds two
// parts, not the blob. The heap is sampled with the collector set tight, so
// what is counted is close to what is live.
func TestWriteMemoryBounded(t *testing.T) {
	s := startVersitygw(t)
	tier := s.tier(t)
	tier.partSize = defaultPartSize
	size := int64(*memBlobMiB) << 20
	h := streamDigest(t, size)
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	start := time.Now()
	w, err := tier.Create(t.Context(), h, size)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel()
	peak := uint64(0)
	buf := make([]byte, 1<<20)
	src := stream(size)
	for {
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				t.Fatal(err)
			}
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
		}
		if err != nil {
			break
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	held := int64(peak) - int64(base)
	t.Logf("a write of %d MiB in %d MiB parts held at most %.1f MiB of heap; %.0f MB/s (%s, the source made as it goes)",
		size>>20, tier.partSize>>20, float64(held)/(1<<20), float64(size)/elapsed.Seconds()/1e6, elapsed.Round(time.Millisecond))
	if held > maxWriteMemory {
		t.Errorf("a write held %d bytes of heap, over %d", held, maxWriteMemory)
	}
	info, err := tier.Stat(t.Context(), h)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != size {
		t.Errorf("committed %d bytes, want %d", info.Size, size)
	}
}

// stream is size bytes of a fixed pseudo-random sequence, made as read.
func stream(size int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{1}), size)
}

// streamDigest is the digest of stream(size), computed without holding it.
func streamDigest(t *testing.T, size int64) v1.Hash {
	t.Helper()
	d := sha256.New()
	if _, err := io.Copy(d, stream(size)); err != nil {
		t.Fatal(err)
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(d.Sum(nil))}
}
