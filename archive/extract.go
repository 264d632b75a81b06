package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// ErrUnsafe says an archive entry was refused: a path leaving the archive,
// an absolute path, a device file or a link pointing outside.
var ErrUnsafe = errors.New("unsafe archive entry")

// ErrCorrupt says an archive could not be read to its end: truncated,
// damaged compression, or an entry that is not what its header says.
var ErrCorrupt = errors.New("corrupt archive")

// Compression names a stream compression recognised by its magic bytes.
type Compression string

// The compressions Decompress recognises. None is a plain stream.
const (
	None  Compression = "none"
	Gzip  Compression = "gzip"
	Bzip2 Compression = "bzip2"
	Xz    Compression = "xz"
	Zstd  Compression = "zstd"
)

// magics are the leading bytes of each compression format.
var magics = []struct {
	c     Compression
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b}},
	{Bzip2, []byte("BZh")},
	{Xz, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
}

// Sniff reports the compression of a stream from its first bytes.
func Sniff(head []byte) Compression {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.c
		}
	}
	return None
}

// Decompress returns r decompressed according to its content, whatever the
// file is called, and the compression found.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, None, err
	}
	c := Sniff(head)
	rc, err := decompressor(c, br)
	if err != nil {
		return nil, c, fmt.Errorf("%w: %s stream: %v", ErrCorrupt, c, err)
	}
	return rc, c, nil
}

func decompressor(c Compression, r io.Reader) (io.ReadCloser, error) {
	switch c {
	case Gzip:
		return gzip.NewReader(r)
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(r)), nil
	case Xz:
		xr, err := xz.NewReader(r)
		return io.NopCloser(xr), err
	case Zstd:
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}

// tree is an archive unpacked into a private directory. Links are never
// created on disk: each one is checked to stay inside the archive and is
// materialised as a hard link of (or copy of) the file it names.
type tree struct {
	dir string
	// left is how many more bytes may be unpacked; negative: no limit.
	left  int64
	files map[string]bool   // cleaned entry name → regular file present
	links map[string]string // cleaned link name → cleaned target
	// unpacked is the bytes of the regular files; meter counts those
	// verified.
	unpacked int64
	meter    *meter
}

// meter reports verification progress.
type meter struct {
	done, total int64
	report      func(done, total int64)
}

// reader counts the bytes read from r as verified.
func (m *meter) reader(r io.Reader) io.Reader {
	if m == nil || m.report == nil {
		return r
	}
	return meterReader{r: r, m: m}
}

type meterReader struct {
	r io.Reader
	m *meter
}

func (mr meterReader) Read(p []byte) (int, error) {
	n, err := mr.r.Read(p)
	if n > 0 {
		mr.m.done += int64(n)
		mr.m.report(min(mr.m.done, mr.m.total), mr.m.total)
	}
	return n, err
}

// unpack reads a (possibly compressed) tar from r into dir, refusing the
// first unsafe or unreadable entry by name.
func unpack(r io.Reader, dir string, limit int64) (*tree, error) {
	rc, _, err := Decompress(r)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	t := &tree{dir: dir, left: -1, files: map[string]bool{}, links: map[string]string{}}
	if limit > 0 {
		t.left = limit
	}
	// Every file is written through root, which the kernel keeps inside dir
	// whatever the names checked below let through.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	tr := tar.NewReader(rc)
	last := "(start of archive)"
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: after entry %s: %v", ErrCorrupt, last, err)
		}
		last = hdr.Name
		if err := t.add(root, tr, hdr); err != nil {
			return nil, err
		}
	}
	if len(t.files) == 0 && len(t.links) == 0 {
		return nil, fmt.Errorf("%w: no entries (not a tar archive?)", ErrCorrupt)
	}
	return t, t.resolveLinks(root)
}

// cleanName checks an entry name and returns it cleaned, relative, with
// forward slashes. A ".." anywhere is refused, also where cleaning would
// cancel it (a/../b) and beside a backslash (..\b, a Windows writer's
// separator): filepath.IsLocal alone accepts those.
func cleanName(name string) (string, error) {
	clean := path.Clean(name)
	if !filepath.IsLocal(filepath.FromSlash(clean)) {
		if strings.HasPrefix(clean, "/") {
			return "", fmt.Errorf("%w: entry %s: absolute path", ErrUnsafe, name)
		}
		return "", fmt.Errorf("%w: entry %s: path leaves the archive", ErrUnsafe, name)
	}
	for _, part := range strings.Split(strings.ReplaceAll(name, `\`, "/"), "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: entry %s: path leaves the archive", ErrUnsafe, name)
		}
	}
	return clean, nil
}

func (t *tree) add(root *os.Root, tr *tar.Reader, hdr *tar.Header) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if t.files[name] || t.links[name] != "" {
		return fmt.Errorf("%w: entry %s appears twice", ErrUnsafe, hdr.Name)
	}
	if isSparse(hdr) {
		// A few bytes can describe a huge file of holes; no save has one.
		return fmt.Errorf("%w: entry %s: sparse file", ErrUnsafe, hdr.Name)
	}
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeXGlobalHeader:
		return nil // directories are made as files need them; a global PAX header is metadata
	//lint:ignore SA1019 TypeRegA ('\x00') is what old tar writers put on regular files.
	case tar.TypeReg, tar.TypeRegA:
		return t.writeFile(root, tr, hdr, name)
	case tar.TypeSymlink:
		return t.addLink(hdr, name, path.Join(path.Dir(name), hdr.Linkname))
	case tar.TypeLink:
		return t.addLink(hdr, name, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return fmt.Errorf("%w: entry %s: device or fifo", ErrUnsafe, hdr.Name)
	}
	return fmt.Errorf("%w: entry %s: unsupported entry type %q", ErrUnsafe, hdr.Name, hdr.Typeflag)
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func (t *tree) addLink(hdr *tar.Header, name, target string) error {
	if path.IsAbs(hdr.Linkname) {
		return fmt.Errorf("%w: entry %s: link to absolute path %s", ErrUnsafe, hdr.Name, hdr.Linkname)
	}
	target = path.Clean(target)
	if target == ".." || strings.HasPrefix(target, "../") {
		return fmt.Errorf("%w: entry %s: link to %s leaves the archive", ErrUnsafe, hdr.Name, hdr.Linkname)
	}
	t.links[name] = target
	return nil
}

func (t *tree) writeFile(root *os.Root, tr *tar.Reader, hdr *tar.Header, name string) error {
	if t.left >= 0 {
		if hdr.Size > t.left {
			return fmt.Errorf("%w: entry %s: the archive unpacks to more than the limit", ErrCorrupt, hdr.Name)
		}
		t.left -= hdr.Size
	}
	dst := filepath.FromSlash(name)
	if err := root.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("entry %s: %w", hdr.Name, err)
	}
	f, err := root.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("entry %s: %w", hdr.Name, err)
	}
	n, err := io.Copy(f, tr)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: entry %s: %v (truncated?)", ErrCorrupt, hdr.Name, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("%w: entry %s: %d of %d bytes", ErrCorrupt, hdr.Name, n, hdr.Size)
	}
	t.unpacked += n
	t.files[name] = true
	return nil
}

// resolveLinks follows each link (through chains of links, bounded) to a
// regular file of the archive and hard-links it into place.
func (t *tree) resolveLinks(root *os.Root) error {
	for name := range t.links {
		target, err := t.follow(name)
		if err != nil {
			return err
		}
		src, dst := filepath.FromSlash(target), filepath.FromSlash(name)
		if err := root.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return fmt.Errorf("entry %s: %w", name, err)
		}
		if err := root.Link(src, dst); err != nil {
			return fmt.Errorf("entry %s: %w", name, err)
		}
	}
	return nil
}

func (t *tree) follow(name string) (string, error) {
	cur := name
	for range 16 {
		next, isLink := t.links[cur]
		if !isLink {
			if t.files[cur] {
				return cur, nil
			}
			return "", fmt.Errorf("%w: entry %s: link to %s, which is not a file of the archive", ErrUnsafe, name, cur)
		}
		cur = next
	}
	return "", fmt.Errorf("%w: entry %s: too many levels of links", ErrUnsafe, name)
}

// open opens a file of the tree by its name in the archive.
func (t *tree) open(name string) (*os.File, error) {
	clean, err := cleanName(name)
	if err != nil {
		return nil, err
	}
	if !t.files[clean] && t.links[clean] == "" {
		return nil, fmt.Errorf("%w: %s is not in the archive", ErrCorrupt, name)
	}
	// In the root: a link planted in an unpacked or scanned directory
	// cannot lead the read outside it.
	return os.OpenInRoot(t.dir, filepath.FromSlash(clean))
}

// readFile reads a small file of the tree (JSON metadata), bounded.
func (t *tree) readFile(name string) ([]byte, error) {
	f, err := t.open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetadata+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(b) > maxMetadata {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, name, maxMetadata)
	}
	return b, nil
}

func (t *tree) has(name string) bool { return t.files[name] || t.links[name] != "" }

// maxMetadata bounds a JSON file read into memory (manifests, configs,
// index.json, manifest.json).
const maxMetadata = 8 << 20

// scanDir indexes an OCI layout directory (or an unpacked save) as a tree.
// Only regular files are taken; a link or device inside is refused by name,
// so nothing is read from outside the directory.
func scanDir(root string) (*tree, error) {
	t := &tree{dir: root, left: -1, files: map[string]bool{}, links: map[string]string{}}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil
		case d.Type().IsRegular():
			t.files[filepath.ToSlash(rel)] = true
			if fi, err := d.Info(); err == nil {
				t.unpacked += fi.Size()
			}
			return nil
		}
		return fmt.Errorf("%w: %s: not a regular file", ErrUnsafe, p)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}
