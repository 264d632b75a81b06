package cluster

import (
	"hash/fnv"
	"slices"
	"strings"
)

// Rank orders members by rendezvous (highest random weight) hashing of key:
// the first is key's owner, the second takes over when the first fails,
// and so on. Every member computes the same order from the same list, and
// adding or removing a member moves only the keys it wins or won.
func Rank(key string, members []string) []string {
	out := slices.Clone(members)
	w := make(map[string]uint64, len(out))
	for _, m := range out {
		w[m] = weight(m, key)
	}
	slices.SortFunc(out, func(a, b string) int {
		switch {
		case w[a] > w[b]:
			return -1
		case w[a] < w[b]:
			return 1
		}
		return strings.Compare(a, b)
	})
	return out
}

// weight is a well-mixed 64-bit hash of the pair (member, key): FNV-1a,
// then splitmix64's finaliser, since FNV alone spreads keys that share a
// long prefix (every sha256: digest) poorly in its high bits.
func weight(member, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(member))
	h.Write([]byte{0})
	h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// BlobKey is the ownership key of a blob.
func BlobKey(digest string) string { return "blob " + digest }

// TagKey is the ownership key of a tag's revalidation.
func TagKey(registry, repo, tag string) string { return "tag " + registry + "/" + repo + ":" + tag }
