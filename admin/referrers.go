package admin

import (
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/cache"
)

// maxReferrerDepth bounds referrers of referrers (a signature of an SBOM
// of an image) followed by export and import.
const maxReferrerDepth = 4

// addReferrers adds to the bundle the referrers the cache knows of the
// subjects in n's repository, and theirs in turn, each as an index.json
// entry without a name, as ORAS writes them: the import side (and any
// reader that looks at subject fields) lists them as referrers of their
// subject. A referrer not completely cached is left out and reported.
func (b *bundle) addReferrers(store *cache.Store, n archive.Name, subjects []v1.Hash, depth int) []string {
	if depth >= maxReferrerDepth {
		return nil
	}
	var next []v1.Hash
	var notes []string
	for _, subject := range subjects {
		refs, _, err := store.Referrers(repoOf(n), subject)
		if err != nil {
			continue // never listed: none known
		}
		for _, d := range refs {
			if b.referrers[d.Digest] {
				continue
			}
			if err := b.addReferrer(store, n, d); err != nil {
				notes = append(notes, fmt.Sprintf("referrer %s (%s) of %s: %v", d.Digest, d.ArtifactType, n, err))
				continue
			}
			next = append(next, d.Digest)
		}
	}
	return append(notes, b.addReferrers(store, n, next, depth+1)...)
}

// addReferrer adds one referrer if it and everything it references are
// cached, and nothing of it otherwise.
func (b *bundle) addReferrer(store *cache.Store, n archive.Name, d v1.Descriptor) error {
	m, err := store.Manifest(d.Digest)
	if err != nil {
		return fmt.Errorf("not cached")
	}
	sub := newBundle()
	if err := sub.addManifest(store, n, m, 0); err != nil {
		return err
	}
	for _, h := range sub.order {
		b.addBlob(h, sub.blobs[h])
	}
	b.referrers[d.Digest] = true
	b.entries = append(b.entries, v1.Descriptor{
		MediaType: types.MediaType(m.MediaType), Size: int64(len(m.Bytes)), Digest: d.Digest,
		ArtifactType: d.ArtifactType, Annotations: d.Annotations,
	})
	return nil
}

func refDigests(m *cache.Manifest) []v1.Hash {
	out := make([]v1.Hash, 0, len(m.Refs))
	for _, d := range m.Refs {
		out = append(out, d.Digest)
	}
	return out
}

// importReferrers stores the archive's referrers under every repository
// of this import that holds their subject (repos maps a manifest digest
// to those repositories; it grows with each referrer stored, so
// referrers of referrers follow), and adds them to the subject's
// referrers list there. A referrer whose subject this import did not
// bring is reported as skipped.
func importReferrers(store *cache.Store, refs []archive.Referrer, repos map[v1.Hash][]cache.Repo, at time.Time, m *storeMeter) ([]Imported, error) {
	var out []Imported
	pending := refs
	for progress := true; progress && len(pending) > 0; {
		progress = false
		var rest []archive.Referrer
		for _, rf := range pending {
			if len(repos[rf.Subject]) == 0 {
				rest = append(rest, rf)
				continue
			}
			done, err := importReferrer(store, rf, repos, at, m)
			out = append(out, done...)
			if err != nil {
				return out, err
			}
			progress = true
		}
		pending = rest
	}
	for _, rf := range pending {
		out = append(out, Imported{Digest: rf.Descriptor.Digest.String(), Subject: rf.Subject.String(),
			ArtifactType: rf.Descriptor.ArtifactType, Skipped: "its subject is not in this archive"})
	}
	return out, nil
}

func importReferrer(store *cache.Store, rf archive.Referrer, repos map[v1.Hash][]cache.Repo, at time.Time, m *storeMeter) ([]Imported, error) {
	manifests, err := storeContent(store, rf.Blobs, rf.Manifests, m)
	if err != nil {
		return nil, err
	}
	var out []Imported
	for _, repo := range repos[rf.Subject] {
		if err := store.ImportImage(repo, nil, manifests, at); err != nil {
			return out, err
		}
		if err := store.AddReferrers(repo, rf.Subject, []v1.Descriptor{rf.Descriptor}, at); err != nil {
			return out, err
		}
		repos[rf.Descriptor.Digest] = appendRepo(repos[rf.Descriptor.Digest], repo)
		out = append(out, Imported{Name: repo.String() + "@" + rf.Subject.String(), Digest: rf.Descriptor.Digest.String(),
			Subject: rf.Subject.String(), ArtifactType: rf.Descriptor.ArtifactType})
	}
	return out, nil
}

func appendRepo(rs []cache.Repo, r cache.Repo) []cache.Repo {
	for _, x := range rs {
		if x == r {
			return rs
		}
	}
	return append(rs, r)
}
