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
