package cache

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseIndexPages drops this process's mapping of the index tables'
// pages that a large read touched. badger maps its tables into memory, so
// a read of every record (the graph at start-up, the scan of the blob
// records) would otherwise leave the whole index resident and counted in
// the process's RSS, a few hundred megabytes at 100,000 images, though
// nothing reads it again soon. The pages stay in the page cache: a later
// read faults them back in from there. Only the tables (*.sst), which
// badger never writes once made, are released.
func releaseIndexPages(dir string) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.HasSuffix(fields[5], ".sst") || filepath.Dir(fields[5]) != dir {
			continue
		}
		from, to, ok := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(from, 16, 64)
		end, err2 := strconv.ParseUint(to, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		// By address, not through a slice: the mapping is badger's.
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
	}
}

// pageReleaser gives back the index pages a long read touched as it goes,
// every releaseEvery records, rather than once at its end: the process's
// peak RSS (VmHWM) then holds a slice of the tables, not every page the
// read went through. The scan of the blob records and an eviction pass's
// scan of the repository links each read a million keys at 100,000
// images.
type pageReleaser struct {
	dir string
	n   int
}

func (s *Store) pageReleaser() *pageReleaser {
	return &pageReleaser{dir: filepath.Join(s.dir, "index")}
}

// read counts one record read, releasing the pages every releaseEvery.
func (r *pageReleaser) read() {
	r.n++
	if r.n%releaseEvery == 0 {
		releaseIndexPages(r.dir)
	}
}

// done releases what the read touched since the last release.
func (r *pageReleaser) done() { releaseIndexPages(r.dir) }
