package cache

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

const crashChildEnv = "PULLCACHE_CRASH_CHILD"

// TestKillAtAnyMomentLeavesASoundStore runs a child that fills, imports,
// confirms tags, evicts and sweeps without end, kills it with SIGKILL at a
// random point of its work, reopens the store and verifies it: nothing
// corrupt, no record pointing at nothing, and every blob and manifest
// served hashes to its digest.
func TestKillAtAnyMomentLeavesASoundStore(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(crashSeed(t), 9))
	const kills = 12
	for i := range kills {
		after := 1 + rng.IntN(60)
		ops := killChildAfter(t, dir, rng.Uint64(), after)
		t.Logf("run %d: killed after %d operations", i, ops)
		checkSound(t, dir)
	}
}

// crashSeedEnv fixes the seed of TestKillAtAnyMomentLeavesASoundStore, to
// repeat a run that failed: which operations the children do, and after
// how many each is killed (the instant within the operation still varies).
const crashSeedEnv = "PULLCACHE_CRASH_TEST_SEED"

// crashSeed is the seed crashSeedEnv gives, else one from the clock; it is
// logged either way, so that a failure can be repeated.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(crashSeedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, v, err)
		}
	}
	t.Logf("seed %d (%s=%d repeats this run)", seed, crashSeedEnv, seed)
	return seed
}

// killChildAfter starts the child, waits for it to report n operations
// done and kills it at once, mid-way through the next one.
func killChildAfter(t *testing.T, dir string, seed uint64, n int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKillAtAnyMomentLeavesASoundStore$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "PULLCACHE_CRASH_SEED="+strconv.FormatUint(seed, 10))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	done := 0
	for done < n && sc.Scan() {
		if bytes.HasPrefix(sc.Bytes(), []byte("op ")) {
			done++
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if done < n {
		t.Fatalf("the child stopped after %d operations: %v\n%s", done, werr, stderr.String())
	}
	return done
}

// checkSound reopens the store and proves it sound.
func checkSound(t *testing.T, dir string) {
	t.Helper()
	s, err := Open(Options{Dir: dir, Housekeeping: -1, MaxSize: 24 << 20})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	rep, err := s.Verify(VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() {
		t.Fatalf("verify after kill: %+v", rep)
	}
	err = s.Tags(func(r Repo, tag string, tg Tag) error {
		m, err := s.Manifest(tg.Digest)
		if err != nil {
			return fmt.Errorf("%s:%s -> %s: %w", r, tag, tg.Digest, err)
		}
		if digestOf(m.Bytes) != tg.Digest {
			return fmt.Errorf("%s:%s: manifest bytes hash to %s", r, tag, digestOf(m.Bytes))
		}
		for _, d := range m.Refs {
			f, _, err := s.OpenBlob(d.Digest)
			if err != nil {
				continue // not cached (evicted with another image, or never fetched): refetched on demand
			}
			b, err := io.ReadAll(f)
			f.Close()
			if err != nil || digestOf(b) != d.Digest {
				return fmt.Errorf("blob %s served %d bytes hashing to %s (%v)", d.Digest, len(b), digestOf(b), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// crashChild works on the store until it is killed.
func crashChild(t *testing.T, dir string) {
	seed, err := strconv.ParseUint(os.Getenv("PULLCACHE_CRASH_SEED"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	s, err := Open(Options{Dir: dir, Housekeeping: -1, MaxSize: 24 << 20, OrphanGrace: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	for op := 0; ; op++ {
		switch k := rng.IntN(10); {
		case k < 5:
			crashFillImage(t, s, rng, op)
		case k < 7:
			crashImportImage(t, s, rng, op)
		case k < 8:
			if _, err := s.evict(evictRequest{need: int64(rng.IntN(8 << 20)), sweep: true}); err != nil {
				t.Fatal(err)
			}
		case k < 9:
			s.GC(false)
		default:
			s.Tags(func(r Repo, tag string, tg Tag) error { return s.ConfirmTag(r, tag, tg.Digest, time.Now()) })
		}
		fmt.Fprintf(w, "op %d\n", op)
		w.Flush()
	}
}

func crashLayer(rng *rand.Rand) []byte {
	b := make([]byte, 32<<10+rng.IntN(1<<20))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// crashFillImage caches an image as a pull does: the manifest, then its
// blobs through fills.
func crashFillImage(t *testing.T, s *Store, rng *rand.Rand, op int) {
	layers := [][]byte{crashLayer(rng), crashLayer(rng)}
	config := []byte(fmt.Sprintf(`{"op":%d}`, op))
	var ds []Descriptor
	for _, b := range layers {
		ds = append(ds, Descriptor{Digest: digestOf(b), Size: int64(len(b))})
	}
	m := imageManifest(t, Descriptor{Digest: digestOf(config), Size: int64(len(config))}, ds...)
	repo := Repo{Registry: "docker.io", Name: "library/fill" + strconv.Itoa(op%7)}
	if err := s.PutManifest(repo, m, "v"+strconv.Itoa(op%3), time.Now()); err != nil {
		return // out of room: a bound that small refuses some
	}
	for _, b := range append(layers, config) {
		f, _, err := s.StartFill(digestOf(b), int64(len(b)), repo.String(), func(context.Context, int64) (io.ReadCloser, int64, error) {
			return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
		})
		if err == nil {
			<-f.Done()
		}
	}
}

// crashImportImage imports an image: blobs, then one transaction.
func crashImportImage(t *testing.T, s *Store, rng *rand.Rand, op int) {
	layer := crashLayer(rng)
	config := []byte(fmt.Sprintf(`{"import":%d}`, op))
	for _, b := range [][]byte{layer, config} {
		if err := s.PutBlob(digestOf(b), int64(len(b)), bytes.NewReader(b)); err != nil {
			return
		}
	}
	m := imageManifest(t, Descriptor{Digest: digestOf(config), Size: int64(len(config))}, Descriptor{Digest: digestOf(layer), Size: int64(len(layer))})
	repo := Repo{Registry: "docker.io", Name: "library/imported" + strconv.Itoa(op%5)}
	_ = s.ImportImage(repo, []string{"v1"}, []*Manifest{m}, time.Now())
	if op%4 == 0 {
		_, _ = s.Remove([]ImageRef{{Repo: repo, Tag: "v1"}}, false)
	}
}

// TestCrashSeedFromEnv: the crash test's seed can be fixed to repeat a run.
func TestCrashSeedFromEnv(t *testing.T) {
	t.Setenv(crashSeedEnv, "42")
	if got := crashSeed(t); got != 42 {
		t.Errorf("crashSeed with %s=42 = %d", crashSeedEnv, got)
	}
}
