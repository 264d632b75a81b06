package cache

import (
	"errors"
	"fmt"
	"path/filepath"
)

// DiskError is a fill's failure on the mirror's own disk (no space left, a
// write, sync or rename refused): the source did nothing wrong, so it is
// said as local, counted as local and not remembered against the source.
type DiskError struct {
	// Op is what failed, e.g. "write".
	Op string
	// Path is the file or directory it failed on.
	Path string
	// Free is the space free on Path's filesystem when it failed, in
	// bytes; -1 if unknown.
	Free int64
	Err  error
}

func (e *DiskError) Error() string {
	return fmt.Sprintf("%s %s (%d bytes free on its filesystem): %v", e.Op, e.Path, e.Free, e.Err)
}

func (e *DiskError) Unwrap() error { return e.Err }

// diskError describes err, a failure of op on path, with the space free
// there; a full filesystem is also ErrNoSpace.
func diskError(op, path string, err error) error {
	free := int64(-1)
	if d, serr := statDisk(filepath.Dir(path)); serr == nil {
		free = d.Free
	}
	return noSpace(&DiskError{Op: op, Path: path, Free: free, Err: err})
}

// IsLocal reports whether err is a failure of the mirror itself (its disk
// or its size bound), not of what it was fetching from.
func IsLocal(err error) bool {
	var de *DiskError
	return errors.As(err, &de) || errors.Is(err, ErrNoSpace)
}

// failureCause is the label a fill failure is counted under: local (the
// mirror's disk or bound), mismatch (bytes that did not match their
// digest or size) or source (the source failed or broke off).
func failureCause(err error) string {
	switch {
	case IsLocal(err):
		return "local"
	case errors.Is(err, ErrDigestMismatch), errors.Is(err, ErrSizeMismatch):
		return "mismatch"
	}
	return "source"
}

// failureAttrs are the log fields of a fill failure: where on the disk it
// failed and how much space was free there, when the disk failed.
func failureAttrs(err error) []any {
	var de *DiskError
	if !errors.As(err, &de) {
		return nil
	}
	return []any{"cause", "local", "path", de.Path, "free_bytes", de.Free}
}
