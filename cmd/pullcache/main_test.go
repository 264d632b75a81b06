package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the command line args as main does and returns the exit code
// and what was written to stdout and stderr. PULLCACHE_* variables are
// cleared so only args configure it.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PULLCACHE_") {
			t.Setenv(k, "")
		}
	}
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// writeIn writes content to dir/name and returns its path.
func writeIn(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// lines are the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestHelpListsCommands(t *testing.T) {
	for _, args := range [][]string{nil, {"help"}, {"-h"}, {"--help"}} {
		t.Run(strings.Join(append([]string{"pullcache"}, args...), " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, args...)
			if code != 0 {
				t.Errorf("exit %d, want 0", code)
			}
			if stderr != "" {
				t.Errorf("stderr %q, want nothing", stderr)
			}
			for _, cmd := range []string{"serve", "version", "help"} {
				if !strings.Contains(stdout, "\n  "+cmd+" ") {
					t.Errorf("help does not list %q:\n%s", cmd, stdout)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	tests := []struct{ name, set, want string }{
		{"unset", "", "pullcache devel\n"},
		{"set at build time", "v1.2.3", "pullcache v1.2.3\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			saved := version
			version = tc.set
			t.Cleanup(func() { version = saved })
			code, stdout, stderr := runCLI(t, "version")
			if code != 0 {
				t.Errorf("exit %d, want 0 (stderr %q)", code, stderr)
			}
			if stdout != tc.want {
				t.Errorf("stdout %q, want %q", stdout, tc.want)
			}
		})
	}
}

// TestUsageErrors: mistakes on the command line or in the configuration
// exit 2 with one line on stderr, starting "pullcache:", that names the
// problem; nothing is served.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string { return writeIn(t, dir, name, content) }
	data := filepath.Join(dir, "data")
	tests := []struct {
		name string
		args []string
		// want is a part of the line naming the problem.
		want string
	}{
		{name: "unknown command", args: []string{"frobnicate"}, want: `unknown command "frobnicate"`},
		{name: "unknown flag", args: []string{"serve", "--bogus"}, want: "-bogus"},
		{name: "password without username", args: []string{"serve", "--data", data, "--config",
			write("nouser.yml", "registries:\n  docker.io: {password: p}\n")}, want: "a password needs a username"},
		{name: "stray argument", args: []string{"serve", "--data", data, "extra"}, want: `unexpected argument "extra"`},
		{name: "bad listen address", args: []string{"serve", "--data", data, "--listen", "nonsense"}, want: `listen "nonsense"`},
		{name: "bad duration flag", args: []string{"serve", "--data", data, "--tag-ttl", "soon"}, want: "--tag-ttl"},
		{name: "bad upstream flag", args: []string{"serve", "--data", data, "--upstream", "ghcr.io"}, want: "want REGISTRY=URL"},
		{name: "upstream with a path", args: []string{"serve", "--data", data, "--upstream", "ghcr.io=https://x.example/v2"}, want: "a path is not supported"},
		{name: "missing config file", args: []string{"serve", "--config", filepath.Join(dir, "nope.yml")}, want: "config file"},
		{name: "unknown key in config", args: []string{"serve", "--config", write("unknown.yml", "listen: :0\nlisen: :1\n")},
			want: `unknown key "lisen"`},
		{name: "malformed YAML", args: []string{"serve", "--config", write("bad.yml", "registries: [\n")}, want: "bad.yml"},
		{name: "bad log level", args: []string{"serve", "--data", data, "--log-level", "loud"}, want: `log.level "loud"`},
		{name: "default registry not configured", args: []string{"serve", "--data", data, "--default-registry", "quay.io"},
			want: `default_registry "quay.io"`},
		{name: "host mapped to an unconfigured registry", args: []string{"serve", "--data", data, "--config",
			write("hosts.yml", "hosts: {ghcr.mirror.lan: ghcr.io}\n")}, want: "hosts.ghcr.mirror.lan"},
		{name: "cert without key", args: []string{"serve", "--data", data, "--config",
			write("cert.yml", "registries:\n  docker.io: {endpoints: [\"https://r.example\"], cert_file: /x/cert.pem}\n")},
			want: "cert_file and key_file go together"},
		{name: "password and password_env", args: []string{"serve", "--data", data, "--config",
			write("pw.yml", "registries:\n  docker.io: {username: u, password: p, password_env: P}\n")},
			want: "password or password_env, not both"},
		{name: "several problems in one line", args: []string{"serve", "--data", data, "--listen", "x", "--log-format", "xml"},
			want: `want HOST:PORT or :PORT; log.format "xml"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			ls := lines(stderr)
			if len(ls) == 0 {
				t.Fatal("stderr is empty")
			}
			if len(ls) != 1 {
				t.Errorf("stderr has %d lines, want 1:\n%s", len(ls), stderr)
			}
			last := ls[len(ls)-1]
			if !strings.HasPrefix(last, "pullcache: ") {
				t.Errorf("stderr line %q does not start with %q", last, "pullcache: ")
			}
			if !strings.Contains(last, tc.want) {
				t.Errorf("stderr line %q does not name the problem (%q)", last, tc.want)
			}
		})
	}
}

// TestIsTerminalOnlyForTerminals: progress bars are drawn on terminals
// only; a file, a pipe, a buffer and /dev/null (a character device, which
// the mode bits alone took for a terminal) get plain lines.
func TestIsTerminalOnlyForTerminals(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{"/dev/null": null, "a file": file, "a pipe": w, "a buffer": &bytes.Buffer{}} {
		if isTerminal(out) {
			t.Errorf("%s is taken for a terminal", name)
		}
	}
}
