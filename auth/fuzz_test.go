package auth

import (
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzParseAuthorization: any header either parses into exactly one kind
// of credentials or is refused; none panics.
func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		basic("ci", "s3cret"), basic("a", "b:c"), "Bearer abc.def.ghi", "Basic", "Basic ===",
		"bearer x=", "Digest a=b", "Basic " + base64.StdEncoding.EncodeToString([]byte("\x00:\x00")),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		c, err := parseAuthorization(h)
		if err != nil {
			return
		}
		if len(h) > maxAuthorization {
			t.Fatalf("accepted a header of %d bytes", len(h))
		}
		if (c.token != "") == (c.user != "") {
			t.Fatalf("%q: neither or both of token and user: %+v", h, c)
		}
		if c.token != "" && !tokenRE.MatchString(c.token) {
			t.Fatalf("token %q outside RFC 6750's b64token", c.token)
		}
		if strings.ContainsFunc(c.user, isControl) || strings.Contains(c.user, ":") {
			t.Fatalf("user %q", c.user)
		}
	})
}

// FuzzParseHtpasswd: any file content loads or is refused as a whole;
// only bcrypt entries are ever matched, and none panics.
func FuzzParseHtpasswd(f *testing.F) {
	f.Add([]byte("alice:$2y$05$NsMWQbTL6nOhJY4zN3GYQOzRBEXXOmuAmzdF4jd0c5rBsuIONV9Qm\n"))
	f.Add([]byte("plain:pw\nmd5:$apr1$x4iFa2Ml$6Gc8Cxdbt.g1qDrFvBuqm/\n\n  \n:$2y$\n"))
	f.Add([]byte("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\r\nno-colon\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := parseHtpasswd(b, func(error) {})
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			user, hash, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok || !file.Exists(user) {
				continue
			}
			if file.Match(user, hash) && !strings.HasPrefix(hash, "$2") {
				t.Fatalf("user %q matched its non-bcrypt entry as a plain password", user)
			}
		}
	})
}

// FuzzRules: a pattern that validates matches names without panicking; a
// literal pattern matches exactly itself; "**" matches everything.
func FuzzRules(f *testing.F) {
	for _, s := range [][2]string{{"myorg/*", "myorg/app"}, {"**/x", "a/b/x"}, {"a/**/b/**", "a/c/b/d/e"}, {"[a-", "a"}, {"a?c", "abc"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if len(name) > 255 {
			return // a repository name is at most 255 characters (request parsing)
		}
		if ValidateRules([]Rule{{Repositories: []string{pattern}}}) != nil {
			return
		}
		got := matchRepo(pattern, name)
		if !strings.ContainsAny(pattern, `*?[\`) && got != (pattern == name) {
			t.Fatalf("literal %q vs %q: %v", pattern, name, got)
		}
		if name != "" && !matchRepo("**", name) {
			t.Fatalf("** does not match %q", name)
		}
		r := Rule{Repositories: []string{pattern}, Users: []string{"u"}}
		_ = r.matches("docker.io", name)
	})
}
