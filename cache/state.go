package cache

// State is the store's condition as a readiness probe asks for it: cheap
// enough for every probe (atomics and one statfs).
type State struct {
	// Scanning is true until the start-up scan has counted every blob;
	// fills wait for it (admission needs the count), hits do not.
	Scanning bool
	// ReadOnly is true while the disk is too full to write the index:
	// cached content is served, nothing new is cached.
	ReadOnly bool
	// Free is what the filesystem has free; MinFree what fills must leave
	// free (the configured min_free, or the index's headroom if larger).
	// Free is -1 when the filesystem could not be asked.
	Free, MinFree int64
}

// State reports the store's condition now.
func (s *Store) State() State {
	st := State{ReadOnly: s.gate.readOnly.Load(), MinFree: s.minFree(), Free: -1}
	select {
	case <-s.use.scanned:
	default:
		st.Scanning = true
	}
	if d, err := statDisk(s.dir); err == nil {
		st.Free = d.Free
	}
	return st
}
