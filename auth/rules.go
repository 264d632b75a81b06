package auth

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Rule says who may pull from the registries and repositories it matches.
// A rule matches a request when the request's registry matches one of
// Registries (or Registries is empty) and its repository matches one of
// Repositories (or Repositories is empty). The first rule that matches
// decides; a rule that admits no one denies what it matches.
type Rule struct {
	// Registries are patterns of registry names ("docker.io",
	// "*.example.com"; path.Match syntax). Empty: every registry.
	Registries []string
	// Repositories are patterns of repository names: components separated
	// by "/", each matched with path.Match ("myorg/*" matches myorg/app but
	// not myorg/team/app), and a "**" component matching any number of
	// components ("myorg/**" matches both). Empty: every repository.
	Repositories []string
	// Users are the user names admitted; "*" admits every authenticated user.
	Users []string
	// Groups are the groups (from the group file) whose members are admitted.
	Groups []string
	// Anonymous admits everyone, with or without credentials.
	Anonymous bool
}

// ValidateRules checks every pattern of rules and returns the problems,
// each naming the rule by its position (access[N]).
func ValidateRules(rules []Rule) error {
	var errs []error
	for i, r := range rules {
		for _, p := range r.Registries {
			if _, err := path.Match(p, ""); err != nil || p == "" || strings.Contains(p, "/") {
				errs = append(errs, fmt.Errorf("access[%d].registries: %q is not a registry name pattern", i, p))
			}
		}
		for _, p := range r.Repositories {
			if err := validRepoPattern(p); err != nil {
				errs = append(errs, fmt.Errorf("access[%d].repositories: %q: %w", i, p, err))
			}
		}
		for _, u := range append(slices.Clone(r.Users), r.Groups...) {
			if u == "" || strings.ContainsAny(u, ": \t") {
				errs = append(errs, fmt.Errorf("access[%d]: %q is not a user or group name", i, u))
			}
		}
	}
	return errors.Join(errs...)
}

func validRepoPattern(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		return errors.New("want components separated by single slashes")
	}
	globstars := 0
	for _, c := range strings.Split(p, "/") {
		if _, err := path.Match(c, ""); err != nil {
			return err
		}
		if c == "**" {
			globstars++
		}
	}
	if globstars > maxGlobstars {
		return fmt.Errorf("at most %d ** components", maxGlobstars)
	}
	return nil
}

// maxGlobstars bounds the ** components of a pattern: matching costs up
// to (components of the name)^(number of **).
const maxGlobstars = 2

// matches reports whether r applies to repository repo of registry. An
// empty repo is a request about the whole registry (the catalog): only a
// rule naming no repositories applies to it.
func (r Rule) matches(registry, repo string) bool {
	if len(r.Registries) > 0 && !slices.ContainsFunc(r.Registries, func(p string) bool {
		ok, _ := path.Match(p, registry)
		return ok
	}) {
		return false
	}
	if len(r.Repositories) == 0 {
		return true
	}
	if repo == "" {
		return false
	}
	return slices.ContainsFunc(r.Repositories, func(p string) bool { return matchRepo(p, repo) })
}

// admits reports whether the rule lets id pull.
func (r Rule) admits(id Identity) bool {
	if r.Anonymous {
		return true
	}
	if id.Anonymous() {
		return false
	}
	if slices.Contains(r.Users, "*") || slices.Contains(r.Users, id.User) {
		return true
	}
	return slices.ContainsFunc(r.Groups, func(g string) bool { return slices.Contains(id.Groups, g) })
}

// matchRepo matches a repository name against a pattern component by
// component; "**" stands for any number of components, none included.
func matchRepo(pattern, name string) bool {
	return matchComponents(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchComponents(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			// Collapse repeated ** (each would otherwise multiply the work).
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for i := range name {
				if matchComponents(pat, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// defaultRules apply when logins are on and no rule is configured:
// every authenticated user pulls everything, anonymous clients nothing.
var defaultRules = []Rule{{Users: []string{"*"}}}
