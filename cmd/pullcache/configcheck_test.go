package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCheck: a file serve would accept exits 0; one it would refuse
// exits 1 with the key named; mistakes on the command line exit 2.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string { return writeIn(t, dir, name, content) }
	good := write("good.yml", "listen: \":5000\"\ndata: /data\nshutdown_grace: 8s\nregistries:\n  docker.io: {}\n  ghcr.io: {username: bot, password_env: GHCR_TOKEN}\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // in stdout when 0, else in stderr
	}{
		{"valid file", []string{"check", good}, 0, "ok: " + good},
		{"the example file with every key", []string{"check", "../../deploy/pullcache.yml"}, 0, "ok: "},
		{"unknown key", []string{"check", write("unknown.yml", "listen: \":1\"\nshutdown_gracee: 8s\n")}, 1, `unknown key "shutdown_gracee"`},
		{"invalid value", []string{"check", write("grace.yml", "shutdown_grace: 0s\n")}, 1, "shutdown_grace: must be positive"},
		{"invalid registry", []string{"check", write("reg.yml", "registries:\n  ghcr.io: {password: p}\n")}, 1, "registries.ghcr.io: a password needs a username"},
		{"bad duration", []string{"check", write("dur.yml", "tag_ttl: soon\n")}, 1, `invalid duration "soon"`},
		{"missing file", []string{"check", filepath.Join(dir, "nope.yml")}, 1, "no such file"},
		{"no file", []string{"check"}, 2, "want exactly one FILE"},
		{"no subcommand", nil, 2, "want a subcommand"},
		{"unknown subcommand", []string{"lint", good}, 2, `unknown subcommand "lint"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"config"}, tc.args...)...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tc.wantCode, stdout, stderr)
			}
			out := stdout
			if tc.wantCode != 0 {
				out = stderr
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output %q does not contain %q", out, tc.want)
			}
		})
	}
}

// TestConfigCheckReadsNoEnvironment: the file alone is checked, so an
// environment that would fix it (or break it) does not change the verdict.
func TestConfigCheckReadsNoEnvironment(t *testing.T) {
	p := writeIn(t, t.TempDir(), "c.yml", "log: {level: loud}\n")
	t.Setenv("PULLCACHE_LOG_LEVEL", "info")
	var out, errOut strings.Builder
	if code := run(t.Context(), []string{"config", "check", p}, &out, &errOut); code != 1 {
		t.Errorf("exit %d, want 1: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), `log.level "loud"`) {
		t.Errorf("stderr %q does not name log.level", errOut.String())
	}
}
