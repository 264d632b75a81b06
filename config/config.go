// Package config holds pullcache's settings: one struct, filled from defaults,
// then a YAML file, then PULLCACHE_* environment variables, then flags, and
// validated once. Only cmd/pullcache reads it; the other packages receive
// plain values.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Config is the whole of pullcache's configuration.
type Config struct {
	// Listen is the address the registry API listens on. Default ":5000".
	Listen string `yaml:"listen"`
	// SendBuffer is the SO_SNDBUF of client connections, in bytes: 0 leaves
	// the kernel's autotuning alone; -1 (auto) pins the autotuning ceiling
	// when the kernel allows it, which halves the wake-ups per gigabyte
	// sent. Default -1.
	SendBuffer int `yaml:"send_buffer"`
	// Data is the directory holding blobs and the index. Default "./pullcache-data".
	Data string `yaml:"data"`
	// TagTTL is how long a tag resolution is trusted before it is revalidated
	// upstream with one HEAD; tag and referrers lists are kept as long.
	// 0 revalidates on every request. Default 5m.
	TagTTL Duration `yaml:"tag_ttl"`
	// NegativeTTL is how long an upstream 404 for a manifest, blob or tag
	// list is remembered per registry and repository, so that a herd of
	// clients asking for something missing costs one upstream request. A
	// failure to reach the upstream (5xx, 429, network) is remembered until
	// the upstream answers again, this long at most. 0 disables. Default 30s.
	NegativeTTL Duration `yaml:"negative_ttl"`
	// DefaultRegistry serves requests that name no registry. Default "docker.io".
	DefaultRegistry string `yaml:"default_registry"`
	// Registries maps a registry name (docker.io, ghcr.io, host:port) to its
	// settings. Default: docker.io only.
	Registries map[string]Registry `yaml:"registries"`
	// Hosts maps a Host header (without port) to a registry name, for
	// mirrors reached under one host name per registry. Default: none.
	Hosts map[string]string `yaml:"hosts"`
	// Allow lists patterns of registry names reachable without their own
	// entry in Registries, with default settings ("*.example.com" matches
	// any subdomain). Default: none, so only configured registries are.
	Allow []string `yaml:"allow"`
	// Prefetch makes a manifest fetched from upstream start fetching the blobs
	// it references. Default true.
	Prefetch *bool `yaml:"prefetch"`
	// PrefetchPlatforms are platforms ("linux/amd64", "linux/arm64/v8")
	// whose child manifests and layers an index fetched from upstream
	// prefetches. Default none (a child is prefetched when requested).
	PrefetchPlatforms []string `yaml:"prefetch_platforms"`
	// PrefetchConcurrency bounds the blobs prefetched at once. Default 4.
	PrefetchConcurrency int `yaml:"prefetch_concurrency"`
	// FillTimeout bounds one upstream blob fetch. Default 30m.
	FillTimeout Duration `yaml:"fill_timeout"`
	// StallTimeout aborts an upstream fetch that sends no byte for this long. Default 60s.
	StallTimeout Duration `yaml:"stall_timeout"`
	// ResponseTimeout bounds how long a request waits for an upstream
	// answer before it is answered itself: 503 UNAVAILABLE when nothing is
	// cached. The fetch goes on and is kept. Default 20s.
	ResponseTimeout Duration `yaml:"response_timeout"`
	// RevalidateTimeout bounds how long revalidating a tag (or a tag or
	// referrers list) that has a cached copy holds a client; then the
	// cached copy is served with a Warning header. Default 5s.
	RevalidateTimeout Duration `yaml:"revalidate_timeout"`
	// DefaultPlatform ("os/arch[/variant]") is the platform whose image a
	// Docker manifest list is answered with for a client that accepts Docker
	// schema 2 images but no list type (Docker before 1.10), as Docker Hub
	// answers such clients. Default "linux/amd64".
	DefaultPlatform string `yaml:"default_platform"`
	// ShutdownGrace bounds how long a stopping server (SIGTERM, SIGINT)
	// goes on serving the transfers in flight after /readyz turned 503;
	// then their connections are closed. It fits inside docker stop's 10 s
	// (and must stay below Kubernetes' terminationGracePeriodSeconds).
	// Default 8s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// Offline serves only cached content and never contacts an upstream.
	// Default false.
	Offline bool `yaml:"offline"`
	// AdminToken, when set, mounts the admin API (import, export, warm,
	// list) under /admin/ on the main listener for requests carrying
	// "Authorization: Bearer TOKEN". The admin socket <data>/admin.sock is
	// always there. Default: none (no /admin/ on the main listener).
	AdminToken string `yaml:"admin_token"`
	// UploadLimit bounds an archive uploaded to /admin/import on the main
	// listener, in bytes. Default 10 GiB.
	UploadLimit int64 `yaml:"upload_limit"`
	// TLS serves the registry API over HTTPS. Default: plain HTTP.
	TLS TLS `yaml:"tls"`
	// TLSClientCAFile, when set, requires clients to present a certificate
	// signed by one of its CAs (mutual TLS). Default none.
	TLSClientCAFile string `yaml:"tls_client_ca_file"`
	// Auth turns on client logins. Default off.
	Auth Auth `yaml:"auth"`
	// Access rules say who may pull what, when logins are on. Default:
	// authenticated users everything, anonymous clients nothing.
	Access []AccessRule `yaml:"access"`
	// Limits bound connections and requests per client.
	Limits Limits `yaml:"limits"`
	// MaxSize bounds the cache's disk space (blobs, index, fills in
	// progress): bytes with a unit ("200GiB") or a percentage of the
	// filesystem ("80%"). Least recently used images are evicted to stay
	// under it. Default: none, only MinFree bounds the cache.
	MaxSize Size `yaml:"max_size"`
	// MinFree is the free space kept on the data directory's filesystem.
	// Default: 5% of the filesystem or 2 GiB, whichever is smaller.
	MinFree Size `yaml:"min_free"`
	// Pin lists images never evicted, as patterns of
	// registry/repository:tag ("docker.io/library/golang:*"). Default none.
	Pin []string `yaml:"pin"`
	// Log configures the log output.
	Log Log `yaml:"log"`
	// Cluster makes this server a member of a cluster. Default: none.
	Cluster Cluster `yaml:"cluster"`
	// Storage adds a shared tier of blobs and manifests. Default: none.
	Storage Storage `yaml:"storage"`
}

// Registry is one upstream registry.
type Registry struct {
	// Endpoints are the base URLs tried in order (failover). Default:
	// https://registry-1.docker.io for docker.io, https://NAME otherwise.
	Endpoints []string `yaml:"endpoints"`
	// Username and Password authenticate to the registry (Basic, or to its
	// token service). Default: anonymous.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// PasswordEnv names an environment variable holding the password.
	PasswordEnv string `yaml:"password_env"`
	// Keychain takes credentials from docker's config.json and credential
	// helpers, as docker login stored them. Default false.
	Keychain bool `yaml:"keychain"`
	// CAFile is a PEM bundle of CAs to trust for this registry, besides the
	// system's. CertFile and KeyFile are a client certificate.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// LAN allows connections and redirects to private, loopback and
	// link-local addresses. Default: true when every endpoint is such an
	// address (or localhost), false otherwise.
	LAN *bool `yaml:"lan"`
	// MaxConcurrency bounds requests in flight to this registry. Default 32.
	MaxConcurrency int `yaml:"max_concurrency"`
	// Timeout bounds connecting and waiting for response headers. Default 30s.
	Timeout Duration `yaml:"timeout"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// Duration is a time.Duration written as "5m" in YAML.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use e.g. 30s, 5m, 1h)", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// DockerHub is the registry name Docker Hub is known by.
const DockerHub = "docker.io"

// Default returns the configuration used when nothing is set.
func Default() Config {
	on := true
	return Config{
		Listen:              ":5000",
		SendBuffer:          -1,
		Data:                "./pullcache-data",
		TagTTL:              Duration(5 * time.Minute),
		NegativeTTL:         Duration(30 * time.Second),
		DefaultRegistry:     DockerHub,
		Registries:          map[string]Registry{DockerHub: {}},
		Prefetch:            &on,
		PrefetchConcurrency: 4,
		FillTimeout:         Duration(30 * time.Minute),
		StallTimeout:        Duration(60 * time.Second),
		ResponseTimeout:     Duration(20 * time.Second),
		RevalidateTimeout:   Duration(5 * time.Second),
		ShutdownGrace:       Duration(8 * time.Second),
		DefaultPlatform:     "linux/amd64",
		UploadLimit:         10 << 30,
		Limits:              Limits{MaxConnections: 10000},
		Log:                 Log{Level: "info", Format: "text"},
	}
}

// DefaultEndpoint is the endpoint used for a registry configured without one.
func DefaultEndpoint(registry string) string {
	if registry == DockerHub {
		return "https://registry-1.docker.io"
	}
	return "https://" + registry
}

// EndpointsOf returns the registry's endpoints, or its default one.
func (c Config) EndpointsOf(registry string) []string {
	if eps := c.Registries[registry].Endpoints; len(eps) > 0 {
		return eps
	}
	return []string{DefaultEndpoint(registry)}
}

// RegistryNames returns the configured registry names, sorted.
func (c Config) RegistryNames() []string {
	names := make([]string, 0, len(c.Registries))
	for n := range c.Registries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// PrefetchEnabled reports whether prefetch is on.
func (c Config) PrefetchEnabled() bool { return c.Prefetch == nil || *c.Prefetch }

// SetUpstream applies one "NAME=URL" upstream setting: the registry NAME is
// served from URL (replacing its endpoints).
func (c *Config) SetUpstream(spec string) error {
	name, raw, ok := strings.Cut(spec, "=")
	if !ok || name == "" || raw == "" {
		return fmt.Errorf("upstream %q: want REGISTRY=URL, e.g. docker.io=https://registry-1.docker.io", spec)
	}
	if err := validEndpoint(raw); err != nil {
		return fmt.Errorf("upstream %q: %w", spec, err)
	}
	if c.Registries == nil {
		c.Registries = map[string]Registry{}
	}
	r := c.Registries[name]
	r.Endpoints = []string{raw}
	c.Registries[name] = r
	return nil
}

// Validate checks the whole configuration and returns every problem found,
// each naming the setting.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: want HOST:PORT or :PORT", c.Listen))
	}
	if c.SendBuffer < -1 {
		errs = append(errs, errors.New("send_buffer: want -1 (auto), 0 (kernel default) or a size in bytes"))
	}
	if c.Data == "" {
		errs = append(errs, errors.New("data: must name a directory"))
	}
	if c.TagTTL < 0 {
		errs = append(errs, errors.New("tag_ttl: must not be negative"))
	}
	if c.NegativeTTL < 0 {
		errs = append(errs, errors.New("negative_ttl: must not be negative (0 disables)"))
	}
	if c.PrefetchConcurrency < 1 {
		errs = append(errs, errors.New("prefetch_concurrency: must be at least 1"))
	}
	if c.FillTimeout <= 0 || c.StallTimeout <= 0 {
		errs = append(errs, errors.New("fill_timeout and stall_timeout: must be positive"))
	}
	if c.ResponseTimeout <= 0 || c.RevalidateTimeout <= 0 {
		errs = append(errs, errors.New("response_timeout and revalidate_timeout: must be positive"))
	}
	if c.ShutdownGrace <= 0 {
		errs = append(errs, errors.New("shutdown_grace: must be positive"))
	}
	if _, ok := c.Registries[c.DefaultRegistry]; !ok {
		errs = append(errs, fmt.Errorf("default_registry %q: not among the configured registries %v", c.DefaultRegistry, c.RegistryNames()))
	}
	for _, name := range c.RegistryNames() {
		errs = append(errs, validRegistry(name, c.Registries[name]))
	}
	for host, reg := range c.Hosts {
		if _, ok := c.Registries[reg]; !ok {
			errs = append(errs, fmt.Errorf("hosts.%s: registry %q is not configured", host, reg))
		}
	}
	for _, p := range c.PrefetchPlatforms {
		if !validPlatform(p) {
			errs = append(errs, fmt.Errorf("prefetch_platforms: %q is not os/arch[/variant]", p))
		}
	}
	if !validPlatform(c.DefaultPlatform) {
		errs = append(errs, fmt.Errorf("default_platform: %q is not os/arch[/variant]", c.DefaultPlatform))
	}
	for _, p := range c.Allow {
		if _, err := path.Match(p, "x"); err != nil || p == "" {
			errs = append(errs, fmt.Errorf("allow: %q is not a valid pattern", p))
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		errs = append(errs, errors.New("admin_token: use at least 16 characters"))
	}
	if c.UploadLimit <= 0 {
		errs = append(errs, errors.New("upload_limit: must be positive (bytes)"))
	}
	for _, p := range c.Pin {
		errs = append(errs, validPin(p))
	}
	errs = append(errs, validLog(c.Log), c.validateSecurity(), c.Cluster.validate(), c.Storage.S3.validate())
	return errors.Join(errs...)
}

func validPlatform(p string) bool {
	parts := strings.Split(p, "/")
	return len(parts) >= 2 && len(parts) <= 3 && !slices.Contains(parts, "")
}

func validRegistry(name string, r Registry) error {
	if name == "" || strings.ContainsAny(name, "/ ") || strings.ToLower(name) != name {
		return fmt.Errorf("registries: %q is not a registry name (lower-case host or host:port)", name)
	}
	for _, ep := range r.Endpoints {
		if err := validEndpoint(ep); err != nil {
			return fmt.Errorf("registries.%s.endpoints: %w", name, err)
		}
	}
	if (r.CertFile == "") != (r.KeyFile == "") {
		return fmt.Errorf("registries.%s: cert_file and key_file go together", name)
	}
	if r.Password != "" && r.PasswordEnv != "" {
		return fmt.Errorf("registries.%s: give password or password_env, not both", name)
	}
	if (r.Password != "" || r.PasswordEnv != "") && r.Username == "" {
		return fmt.Errorf("registries.%s: a password needs a username", name)
	}
	if r.MaxConcurrency < 0 || r.Timeout < 0 {
		return fmt.Errorf("registries.%s: max_concurrency and timeout must not be negative", name)
	}
	return nil
}

// Allowed reports whether an unconfigured registry name matches Allow.
func (c Config) Allowed(registry string) bool {
	for _, p := range c.Allow {
		if ok, _ := path.Match(p, registry); ok {
			return true
		}
	}
	return false
}

// IsLAN reports whether r may reach private addresses: as configured, or
// when every endpoint is a private, loopback or link-local address.
func (c Config) IsLAN(name string) bool {
	if lan := c.Registries[name].LAN; lan != nil {
		return *lan
	}
	for _, ep := range c.EndpointsOf(name) {
		u, err := url.Parse(ep)
		if err != nil || !privateHost(u.Hostname()) {
			return false
		}
	}
	return true
}

func privateHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast())
}

func validEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("endpoint %q: want an http:// or https:// URL with a host", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Errorf("endpoint %q: a path is not supported, give the registry's root URL", raw)
	}
	return nil
}

// validPin checks a pin pattern: registry/repository:tag or @digest,
// with path.Match wildcards.
func validPin(p string) error {
	slash := strings.Index(p, "/")
	if slash <= 0 || !strings.ContainsAny(p[slash:], ":@") {
		return fmt.Errorf("pin: %q is not REGISTRY/REPOSITORY:TAG (wildcards allowed: docker.io/library/golang:*)", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("pin: %q: %v", p, err)
	}
	return nil
}

func validLog(l Log) error {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level %q: want debug, info, warn or error", l.Level)
	}
	if l.Format != "text" && l.Format != "json" {
		return fmt.Errorf("log.format %q: want text or json", l.Format)
	}
	return nil
}

// PrepareData creates the data directory if needed and checks it is writable.
func PrepareData(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("data %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return "", fmt.Errorf("data directory %s cannot be created: %w", abs, errors.Unwrap(err))
	}
	probe, err := os.CreateTemp(abs, ".probe-*")
	if err != nil {
		return "", fmt.Errorf("data directory %s is not writable: %w", abs, errors.Unwrap(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	return abs, nil
}
