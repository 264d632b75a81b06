// Package tmpfs gives tests a small real filesystem to fill: a tmpfs
// mounted for the test (root only; the test is skipped elsewhere) and a
// writer that fills it as another process on the same disk would.
package tmpfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// Mount mounts a tmpfs of size bytes for the test and unmounts it
// afterwards; it skips the test where mounting is impossible (not root, no
// CAP_SYS_ADMIN).
func Mount(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err != nil {
		t.Skipf("disk-full test needs a small real filesystem: mounting a tmpfs failed (%v); run as root to include it", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes path until its filesystem is full, partial blocks included.
func Fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{0xa5}, 1<<20)
	for _, n := range []int{1 << 20, 64 << 10, 4 << 10, 512} {
		for range 1 << 12 {
			if _, err := f.Write(buf[:n]); err != nil {
				if !errors.Is(err, unix.ENOSPC) {
					return err
				}
				break
			}
		}
	}
	return nil
}
