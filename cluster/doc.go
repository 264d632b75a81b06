// Package cluster lets several pullcache members act as one mirror without
// shared storage: it knows the members (a list or a DNS name), which of
// them are alive (health probes of their /healthz), and who owns what
// (rendezvous hashing of a blob's digest, or of a tag's
// registry/repository/tag, over the live members). Its Upstream decorator
// sends a blob or a tag's revalidation to its owner over the members' own
// registry API, authenticated by a shared secret, and falls back to the
// upstream when the owner cannot be reached; a blob whose owner fails
// mid-stream is resumed from the next member in hashing order at the byte
// already received.
//
// It is not a consensus protocol: members that disagree about who is alive
// at worst both fetch from the upstream. It does not import the proxy or
// the cache; the few things it needs of them are small interfaces here.
package cluster
