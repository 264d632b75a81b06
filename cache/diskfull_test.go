package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/test/tmpfs"
)

func mountTmpfs(t *testing.T, size int64) string { return tmpfs.Mount(t, size) }

// fillDisk fills the filesystem of path as another process would.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	if err := tmpfs.Fill(path); err != nil {
		t.Fatal(err)
	}
}

// churn runs what a serving mirror writes to the index on its own — tag
// revalidations and access-time flushes — until stop is closed, and
// reports any error that is not the read-only refusal.
func churn(s *Store, repo Repo, h v1.Hash, stop <-chan struct{}, errs chan<- error) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if err := s.ConfirmTag(repo, "v1", h, s.now()); err != nil {
			errs <- err
			return
		}
		s.access.touch(h)
		s.access.flush()
		if err := s.Link(repo, digestOf([]byte(strconv.Itoa(i)))); err != nil {
			errs <- err
			return
		}
	}
}

// mountExt4 makes an ext4 filesystem of size bytes in a file and mounts
// it through a loop device (detached again at unmount); it skips the test
// where that is impossible.
func mountExt4(t *testing.T, size int64) string {
	t.Helper()
	tmp := t.TempDir()
	img, dir := filepath.Join(tmp, "fs.img"), filepath.Join(tmp, "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Skipf("disk-full test on ext4 needs mkfs.ext4: %v %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, dir).CombinedOutput(); err != nil {
		t.Skipf("disk-full test on ext4 needs a loop mount (root): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

func TestAFullDiskNeverKillsTheProcess(t *testing.T) {
	if os.Getenv("PULLCACHE_DISKFULL_CHILD") == "" {
		for _, fs := range []struct {
			name  string
			mount func(*testing.T, int64) string
		}{{"tmpfs", mountTmpfs}, {"ext4", mountExt4}} {
			t.Run(fs.name, func(t *testing.T) {
				// Run in a child: without the safeguards a full disk is a
				// SIGBUS, which would take the whole test binary down.
				mnt := fs.mount(t, 56<<20)
				cmd := exec.Command(os.Args[0], "-test.run", "^TestAFullDiskNeverKillsTheProcess$", "-test.v")
				cmd.Env = append(os.Environ(), "PULLCACHE_DISKFULL_CHILD="+mnt)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("the child died on a full disk: %v\n%s", err, out)
				}
				t.Logf("child:\n%s", out)
			})
		}
		return
	}
	mnt := os.Getenv("PULLCACHE_DISKFULL_CHILD")
	s, err := Open(Options{Dir: filepath.Join(mnt, "data"), MaxSize: 40 << 20, Housekeeping: -1, StallTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	<-s.use.scanned
	img := putImage(t, s, "warm", []int{2 << 20})

	stop := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); churn(s, img.repo, img.m.Digest, stop, errs) }()

	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler)
	// Let the churn run into the full disk for a bounded number of writes.
	for range 2000 {
		if err := s.ConfirmTag(img.repo, "v1", img.m.Digest, s.now()); err != nil {
			t.Fatalf("ConfirmTag on a full disk: %v", err)
		}
		s.access.touch(img.m.Digest)
		s.access.flush()
	}
	if !s.gate.readOnly.Load() {
		t.Error("the index did not go read-only on a full disk")
	}
	if err := s.PutManifest(img.repo, img.m, "v2", s.now()); !errors.Is(err, ErrIndexReadOnly) && !errors.Is(err, ErrNoSpace) {
		t.Errorf("PutManifest on a full disk: %v", err)
	}

	// A fill runs out of space cleanly.
	big := randomBytes(t, 8<<20)
	f, _, err := s.StartFill(digestOf(big), int64(len(big)), "r", func(context.Context, int64) (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(big)), int64(len(big)), nil
	})
	if err == nil {
		<-f.Done()
		err = f.Err()
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Errorf("a fill on a full disk: %v, want ErrNoSpace", err)
	}
	if s.HasBlob(digestOf(big)) {
		t.Error("the failed fill was committed")
	}
	if left := dirAllocated(filepath.Join(s.dir, "tmp")); left != 0 {
		t.Errorf("%d bytes left in tmp/", left)
	}

	// Cached content is still served.
	for _, d := range append([]Descriptor{{Digest: img.m.Digest}}, img.m.Refs...) {
		rf, _, err := s.OpenBlob(d.Digest)
		if err != nil {
			t.Fatalf("cached blob %s on a full disk: %v", d.Digest, err)
		}
		b, err := io.ReadAll(rf)
		rf.Close()
		if err != nil || digestOf(b) != d.Digest {
			t.Fatalf("cached blob %s: %v", d.Digest, err)
		}
	}

	// Space comes back: the index is writable again and fills succeed.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s.gate.check()
	if s.gate.readOnly.Load() {
		t.Fatal("the index stayed read-only after space was freed")
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("index write while the disk was full: %v", err)
	default:
	}
	after := putImage(t, s, "after", []int{1 << 20})
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	s, err = Open(Options{Dir: filepath.Join(mnt, "data"), MaxSize: 40 << 20, Housekeeping: -1})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if !cached(s, after) || !cached(s, img) {
		t.Error("images lost across the full disk")
	}
	rep, err := s.Verify(VerifyOptions{})
	if err != nil || !rep.Clean() {
		t.Errorf("verify after the full disk: %+v %v", rep, err)
	}
}

func TestMinFreeEvictsBeforeTheDiskFills(t *testing.T) {
	mnt := mountTmpfs(t, 64<<20)
	clock := &fakeClock{t: epoch}
	s, err := Open(Options{Dir: filepath.Join(mnt, "data"), MinFree: 8 << 20, Housekeeping: -1, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	<-s.use.scanned
	var last image
	for i := range 40 { // 160 MiB through a 64 MiB filesystem
		clock.set(epoch.Add(time.Duration(i) * time.Minute))
		last = putImage(t, s, "img"+strconv.Itoa(i), []int{4 << 20})
		free, _, err := DiskSpace(mnt)
		if err != nil {
			t.Fatal(err)
		}
		if free < 8<<20 {
			t.Fatalf("after image %d only %d bytes free, min_free is 8 MiB", i, free)
		}
	}
	if !cached(s, last) {
		t.Error("the newest image was evicted")
	}
	if s.gate.readOnly.Load() {
		t.Error("the index went read-only although blobs kept its room")
	}
}
