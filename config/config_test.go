package config

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func load(t *testing.T, file string, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := RegisterFlags(fs)
	if file != "" {
		p := filepath.Join(t.TempDir(), "c.yml")
		if err := os.WriteFile(p, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", p}, args...)
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	return f.Load(func(k string) string { return env[k] })
}

func TestDefaults(t *testing.T) {
	c, err := load(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":5000" || c.Data != "./pullcache-data" || time.Duration(c.TagTTL) != 5*time.Minute {
		t.Errorf("defaults: %+v", c)
	}
	if got := c.EndpointsOf("docker.io"); len(got) != 1 || got[0] != "https://registry-1.docker.io" {
		t.Errorf("docker.io endpoint: %v", got)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestPrecedenceFlagsOverEnvOverFile(t *testing.T) {
	file := "listen: \":1\"\ndata: /file\ntag_ttl: 1m\n"
	env := map[string]string{"PULLCACHE_DATA": "/env", "PULLCACHE_TAG_TTL": "2m"}
	c, err := load(t, file, env, "--tag-ttl", "3m")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":1" {
		t.Errorf("listen from the file: %q", c.Listen)
	}
	if c.Data != "/env" {
		t.Errorf("data from env over file: %q", c.Data)
	}
	if time.Duration(c.TagTTL) != 3*time.Minute {
		t.Errorf("tag_ttl from the flag over env: %v", time.Duration(c.TagTTL))
	}
}

// TestShutdownGrace: the key, its env variable and its flag set the same
// field, and the default leaves room inside docker stop's 10 s.
func TestShutdownGrace(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		args       []string
		want       time.Duration
	}{
		{"default", "", nil, nil, 8 * time.Second},
		{"file", "shutdown_grace: 20s\n", nil, nil, 20 * time.Second},
		{"env over file", "shutdown_grace: 20s\n", map[string]string{"PULLCACHE_SHUTDOWN_GRACE": "25s"}, nil, 25 * time.Second},
		{"flag over env", "", map[string]string{"PULLCACHE_SHUTDOWN_GRACE": "25s"}, []string{"--shutdown-grace", "3s"}, 3 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.file, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got := time.Duration(c.ShutdownGrace); got != tc.want {
				t.Errorf("shutdown_grace = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUpstreams(t *testing.T) {
	c, err := load(t, "", map[string]string{"PULLCACHE_UPSTREAM": "ghcr.io=https://ghcr.example, quay.io=http://10.0.0.1:5000"},
		"--upstream", "docker.io=http://127.0.0.1:5001")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"docker.io": "http://127.0.0.1:5001", "ghcr.io": "https://ghcr.example", "quay.io": "http://10.0.0.1:5000"}
	for name, ep := range want {
		if got := c.EndpointsOf(name); got[0] != ep {
			t.Errorf("%s: %v, want %s", name, got, ep)
		}
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestErrorsNameTheProblem(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		args       []string
		want       string
	}{
		{"unknown key", "listen: \":1\"\nlisten_addr: x\n", nil, nil, `line 2: unknown key "listen_addr"`},
		{"bad duration in file", "tag_ttl: soon\n", nil, nil, `invalid duration "soon"`},
		{"malformed upstream flag", "", nil, []string{"--upstream", "docker.io"}, "want REGISTRY=URL"},
		{"upstream with a path", "", nil, []string{"--upstream", "docker.io=http://h/x"}, "a path is not supported"},
		{"upstream not http", "", nil, []string{"--upstream", "docker.io=ftp://h"}, "want an http:// or https:// URL"},
		{"bad env duration", "", map[string]string{"PULLCACHE_TAG_TTL": "x"}, nil, "PULLCACHE_TAG_TTL"},
		{"bad prefetch", "", map[string]string{"PULLCACHE_PREFETCH": "maybe"}, nil, "want true or false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.file, tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"listen", func(c *Config) { c.Listen = "5000" }, "listen"},
		{"default registry missing", func(c *Config) { c.DefaultRegistry = "ghcr.io" }, "default_registry"},
		{"registry name", func(c *Config) { c.Registries["Bad Name"] = Registry{} }, "not a registry name"},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, "log.level"},
		{"negative ttl", func(c *Config) { c.TagTTL = -1 }, "tag_ttl"},
		{"default platform", func(c *Config) { c.DefaultPlatform = "amd64" }, "default_platform"},
		{"negative negative_ttl", func(c *Config) { c.NegativeTTL = -1 }, "negative_ttl"},
		{"zero response_timeout", func(c *Config) { c.ResponseTimeout = 0 }, "response_timeout"},
		{"zero shutdown_grace", func(c *Config) { c.ShutdownGrace = 0 }, "shutdown_grace"},
		{"zero revalidate_timeout", func(c *Config) { c.RevalidateTimeout = 0 }, "revalidate_timeout"},
	}
	for _, tc := range tests {
		c := Default()
		tc.mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}

func TestPrepareData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	abs, err := PrepareData(dir)
	if err != nil || !filepath.IsAbs(abs) {
		t.Fatalf("PrepareData = %q, %v", abs, err)
	}
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	if _, err := PrepareData(filepath.Join(blocker, "sub")); err == nil || !strings.Contains(err.Error(), "cannot be created") {
		t.Errorf("data under a file: %v", err)
	}
}

// fuzzMaxYAML bounds a fuzzed config file: real ones are a few hundred
// bytes, and YAML aliases let a few kilobytes expand to megabytes.
const fuzzMaxYAML = 4 << 10

// FuzzParseYAML: a file that parses validates without panicking, and the
// configuration it gives survives a round trip: written back as YAML it
// parses again, to a configuration that writes the same YAML and
// validates alike.
func FuzzParseYAML(f *testing.F) {
	f.Add([]byte("listen: \":5000\"\nregistries:\n  docker.io:\n    endpoints: [\"https://x\"]\n"))
	f.Add([]byte("tag_ttl: 5m\nlog: {level: debug}\n"))
	f.Add([]byte("max_size: 80%\nmin_free: 1.5GiB\npin: [\"docker.io/library/alpine:3\"]\naccess:\n  - {repositories: [\"myorg/**\"], users: [\"*\"]}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzMaxYAML {
			return
		}
		c := Default()
		if err := parseYAML(&c, b, "fuzz"); err != nil {
			return
		}
		valid := c.Validate() == nil
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("the parsed configuration does not marshal: %v", err)
		}
		back := Default()
		if err := parseYAML(&back, out, "round trip"); err != nil {
			t.Fatalf("written back, it does not parse: %v\n%s", err, out)
		}
		if (back.Validate() == nil) != valid {
			t.Fatalf("valid before the round trip: %v, after: %v\n%s", valid, !valid, out)
		}
		normalize(reflect.ValueOf(&c))
		normalize(reflect.ValueOf(&back))
		if !reflect.DeepEqual(c, back) {
			again, _ := yaml.Marshal(back)
			t.Fatalf("the round trip changed the configuration:\n%s\nbecame\n%s", out, again)
		}
	})
}

// normalize makes the differences YAML cannot carry vanish: an empty
// list or map reads back as empty where it was nil, and an unset Size
// writes as "0", which reads back as a Size set to 0.
func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			normalize(v.Elem())
		}
	case reflect.Struct:
		if s, ok := v.Interface().(Size); ok {
			if s.Bytes == 0 && s.Percent == 0 {
				v.Set(reflect.ValueOf(Size{}))
			}
			return
		}
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				normalize(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		normalizeElems(v)
	}
}

func normalizeElems(v reflect.Value) {
	if v.Kind() == reflect.Slice {
		for i := range v.Len() {
			normalize(v.Index(i))
		}
		return
	}
	for _, k := range v.MapKeys() {
		e := reflect.New(v.Type().Elem()).Elem()
		e.Set(v.MapIndex(k))
		normalize(e)
		v.SetMapIndex(k, e)
	}
}
