package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	htpasswd "github.com/tg123/go-htpasswd"
	"golang.org/x/crypto/bcrypt"
)

// maxUserFile bounds what is read of the htpasswd and group files.
const maxUserFile = 16 << 20

// table is one reading of the user and group files.
type table struct {
	users  *htpasswd.File
	groups *htpasswd.HTGroup // nil without a group file
	// creds are a digest of each user's entry (see entryDigests).
	creds map[string]string
	gen   uint64
}

// users are the htpasswd and group files, reread when they change.
// Verified passwords are remembered (under an HMAC of user and password,
// for the current reading only), so Basic credentials sent with every blob
// request cost one bcrypt comparison, not one each.
type users struct {
	opts     Options
	log      *slog.Logger
	cur      atomic.Pointer[table]
	verified *lru.Cache[[32]byte, uint64]
	macKey   []byte
	dummy    []byte // a bcrypt hash compared for unknown users

	mu        sync.Mutex // serialises checks and reloads
	lastCheck time.Time
	stamps    [2]os.FileInfo
}

func newUsers(opts Options) (*users, error) {
	u := &users{opts: opts, log: opts.Logger, macKey: make([]byte, 32)}
	_, _ = rand.Read(u.macKey)
	u.verified, _ = lru.New[[32]byte, uint64](4096)
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	cost := opts.dummyCost
	if cost == 0 {
		cost = bcrypt.DefaultCost // what htpasswd -B uses
	}
	var err error
	if u.dummy, err = bcrypt.GenerateFromPassword(pw, cost); err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.reload(); err != nil {
		return nil, err
	}
	u.lastCheck = opts.Now()
	return u, nil
}

// refresh rereads the files if CheckInterval has passed and either
// changed. A file that cannot be read keeps the last good reading.
func (u *users) refresh() {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.opts.Now()
	if now.Sub(u.lastCheck) < u.opts.CheckInterval {
		return
	}
	u.lastCheck = now
	if !u.changed() {
		return
	}
	if err := u.reload(); err != nil {
		u.log.Warn("user files not reloaded; the last good ones stay in use", "err", err)
	}
}

func (u *users) changed() bool {
	for i, path := range []string{u.opts.HtpasswdFile, u.opts.GroupFile} {
		if path == "" {
			continue
		}
		fi, err := os.Stat(path)
		if err != nil {
			return true // reload reports it
		}
		old := u.stamps[i]
		if old == nil || !os.SameFile(old, fi) || !old.ModTime().Equal(fi.ModTime()) || old.Size() != fi.Size() {
			return true
		}
	}
	return false
}

// reload reads both files; on success the new reading replaces the old.
func (u *users) reload() error {
	var next table
	var stamps [2]os.FileInfo
	b, fi, err := readBounded(u.opts.HtpasswdFile)
	if err != nil {
		return fmt.Errorf("htpasswd file: %w", err)
	}
	stamps[0] = fi
	var ignored int
	if next.users, err = parseHtpasswd(b, func(error) { ignored++ }); err != nil {
		return fmt.Errorf("htpasswd file %s: %w", u.opts.HtpasswdFile, err)
	}
	next.creds = entryDigests(b)
	if u.opts.GroupFile != "" {
		b, fi, err := readBounded(u.opts.GroupFile)
		if err != nil {
			return fmt.Errorf("group file: %w", err)
		}
		stamps[1] = fi
		if next.groups, err = htpasswd.NewGroupsFromReader(bytes.NewReader(b), nil); err != nil {
			return fmt.Errorf("group file %s: %w", u.opts.GroupFile, err)
		}
	}
	if old := u.cur.Load(); old != nil {
		next.gen = old.gen + 1
	}
	u.cur.Store(&next)
	u.stamps = stamps
	if ignored > 0 {
		// The lines themselves hold hashes: say only how many.
		u.log.Warn("htpasswd lines ignored: only user:bcrypt-hash lines are accepted (htpasswd -B)", "file", u.opts.HtpasswdFile, "lines", ignored)
	}
	u.log.Info("user files loaded", "htpasswd", u.opts.HtpasswdFile, "groups", u.opts.GroupFile, "generation", next.gen)
	return nil
}

func readBounded(path string) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxUserFile+1))
	if err != nil {
		return nil, nil, err
	}
	if len(b) > maxUserFile {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", path, maxUserFile)
	}
	return b, fi, nil
}

// parseHtpasswd reads htpasswd lines, accepting bcrypt entries only; bad
// is called for each line that is not one.
func parseHtpasswd(b []byte, bad func(error)) (*htpasswd.File, error) {
	return htpasswd.NewFromReader(bytes.NewReader(b), []htpasswd.PasswdParser{htpasswd.AcceptBcrypt}, bad)
}

// verify checks a user's password. Unknown users cost a bcrypt comparison
// too, so timing does not tell which users exist.
func (u *users) verify(user, password string) bool {
	u.refresh()
	t := u.cur.Load()
	key := u.mac(user, password)
	if gen, ok := u.verified.Get(key); ok && gen == t.gen {
		return true
	}
	if user == "" || !t.users.Exists(user) {
		_ = bcrypt.CompareHashAndPassword(u.dummy, []byte(password))
		return false
	}
	if !t.users.Match(user, password) {
		return false
	}
	u.verified.Add(key, t.gen)
	return true
}

// entryDigests digests each user's hash, taking the lines parseHtpasswd
// takes (the last accepted entry of a user wins there and here): what a
// session remembers to notice a changed password, without keeping the
// hash itself.
func entryDigests(b []byte) map[string]string {
	creds := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		user, hash, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		if m, err := htpasswd.AcceptBcrypt(hash); err != nil || m == nil {
			continue
		}
		sum := sha256.Sum256([]byte(hash))
		creds[user] = hex.EncodeToString(sum[:16])
	}
	return creds
}

// credential is the digest of user's entry now; empty when it has none.
func (u *users) credential(user string) string {
	if t := u.cur.Load(); t != nil {
		return t.creds[user]
	}
	return ""
}

// exists reports whether user is (still) in the htpasswd file.
func (u *users) exists(user string) bool {
	u.refresh()
	return u.cur.Load().users.Exists(user)
}

func (u *users) groupsOf(user string) []string {
	t := u.cur.Load()
	if t.groups == nil {
		return nil
	}
	return t.groups.GetUserGroups(user)
}

func (u *users) mac(user, password string) [32]byte {
	m := hmac.New(sha256.New, u.macKey)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var k [32]byte
	copy(k[:], m.Sum(nil))
	return k
}
