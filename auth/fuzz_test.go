package auth

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
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
	f.Add([]byte(htpasswdLine(f, "alice", "pw") + "\n"))
	f.Add([]byte("plain:pw\nmd5:$apr1$x4iFa2Ml$6Gc8Cxdbt.g1qDrFvBuqm/\n\n  \n:$2y$\n"))
	f.Add([]byte("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\r\nno-colon\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if bcryptCostAbove(b, bcrypt.MinCost) {
			// A mutated cost of 31 makes one Match run for hours: the
			// fuzzer would test nothing else.
			return
		}
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

// bcryptCostAbove says whether any bcrypt hash that b could hold, read
// from any "$2" in it, has a cost above limit.
func bcryptCostAbove(b []byte, limit int) bool {
	for i := 0; i < len(b); i++ {
		j := bytes.Index(b[i:], []byte("$2"))
		if j < 0 {
			return false
		}
		i += j
		if c, err := bcrypt.Cost(b[i:]); err == nil && c > limit {
			return true
		}
	}
	return false
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

// FuzzParseScope: a parsed scope prints back to what a challenge can
// carry (no quote, backslash, space or control character), with at least
// one action.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"repository:library/alpine:pull", "repository:localhost:5000/a/b:pull,push", "registry:catalog:*", "repository::pull", ":x:y", "a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, ok := ParseScope(s)
		if !ok {
			return
		}
		if len(sc.Actions) == 0 || sc.Type == "" {
			t.Fatalf("%q: %+v", s, sc)
		}
		if strings.ContainsAny(sc.String(), "\" \\") || strings.ContainsFunc(sc.String(), isControl) {
			t.Fatalf("%q prints as %q, unfit for a challenge", s, sc.String())
		}
		if g, ok := grantable(sc); ok && (len(g.Actions) != 1 || (g.Actions[0] != "pull" && g.Actions[0] != "*")) {
			t.Fatalf("granted %+v: only pull (or the catalog) is ever granted", g)
		}
	})
}

// FuzzVerifyToken: no string but a token this Authenticator signed
// authenticates.
func FuzzVerifyToken(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, []byte(htpasswdLine(f, "ci", "pw")+"\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	a, err := New(Options{HtpasswdFile: path, dummyCost: bcrypt.MinCost})
	if err != nil {
		f.Fatal(err)
	}
	other, err := New(Options{HtpasswdFile: path, dummyCost: bcrypt.MinCost})
	if err != nil {
		f.Fatal(err)
	}
	foreign, _, err := other.issue("ci", []Scope{{Type: "repository", Name: "x", Actions: []string{"pull"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(foreign)
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJjaSJ9.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		if _, d := a.verifyToken(tok); d == nil {
			t.Fatalf("%q authenticated without being signed by this server", tok)
		}
	})
}

// TestBcryptCostAbove: the bound FuzzParseHtpasswd puts on its inputs
// finds a costly hash wherever it is, and lets the cheapest through.
func TestBcryptCostAbove(t *testing.T) {
	cheap := htpasswdLine(t, "a", "pw") // cost 4, bcrypt.MinCost
	costly := strings.Replace(cheap, "$04$", "$31$", 1)
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{cheap, false},
		{costly, true},
		{"x:y\n" + cheap + "\n" + costly + "\n", true},
		{"plain:pw\n$2y$", false},
	} {
		if got := bcryptCostAbove([]byte(tt.in), bcrypt.MinCost); got != tt.want {
			t.Errorf("bcryptCostAbove(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
