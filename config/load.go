package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// setting is one value that can come from an environment variable or a flag.
// Both sources go through the same apply function, so they cannot disagree.
type setting struct {
	flag, env, usage string
	apply            func(*Config, string) error
	// boolean flags may be given bare (--offline means --offline=true).
	boolean bool
}

var settings = []setting{
	{"listen", "PULLCACHE_LISTEN", "address to listen on (default :5000)", func(c *Config, v string) error { c.Listen = v; return nil }, false},
	{"data", "PULLCACHE_DATA", "data directory (default ./pullcache-data)", func(c *Config, v string) error { c.Data = v; return nil }, false},
	{"tag-ttl", "PULLCACHE_TAG_TTL", "how long a tag is trusted before one upstream HEAD revalidates it; 0 revalidates every request (default 5m)", func(c *Config, v string) error {
		return c.TagTTL.UnmarshalText([]byte(v))
	}, false},
	{"negative-ttl", "PULLCACHE_NEGATIVE_TTL", "how long an upstream 404 is remembered; 0 disables (default 30s)", func(c *Config, v string) error {
		return c.NegativeTTL.UnmarshalText([]byte(v))
	}, false},
	{"response-timeout", "PULLCACHE_RESPONSE_TIMEOUT", "longest wait for an upstream before a request is answered (default 20s)", func(c *Config, v string) error {
		return c.ResponseTimeout.UnmarshalText([]byte(v))
	}, false},
	{"revalidate-timeout", "PULLCACHE_REVALIDATE_TIMEOUT", "longest wait for a revalidation before the cached copy is served stale (default 5s)", func(c *Config, v string) error {
		return c.RevalidateTimeout.UnmarshalText([]byte(v))
	}, false},
	{"shutdown-grace", "PULLCACHE_SHUTDOWN_GRACE", "how long a stopping server finishes the transfers in flight (default 8s)", func(c *Config, v string) error {
		return c.ShutdownGrace.UnmarshalText([]byte(v))
	}, false},
	{"default-registry", "PULLCACHE_DEFAULT_REGISTRY", "registry for requests that name none (default docker.io)", func(c *Config, v string) error { c.DefaultRegistry = v; return nil }, false},
	{"prefetch", "PULLCACHE_PREFETCH", "prefetch the blobs of fetched manifests (default true)", func(c *Config, v string) error {
		b, err := parseBool(v)
		c.Prefetch = &b
		return err
	}, true},
	{"default-platform", "PULLCACHE_DEFAULT_PLATFORM", "platform whose image a Docker manifest list is answered with for clients that accept no list type (default linux/amd64)", func(c *Config, v string) error { c.DefaultPlatform = v; return nil }, false},
	{"offline", "PULLCACHE_OFFLINE", "serve only cached content; never contact an upstream (default false)", func(c *Config, v string) (err error) {
		c.Offline, err = parseBool(v)
		return err
	}, true},
	{"upload-limit", "PULLCACHE_UPLOAD_LIMIT", "largest archive accepted by /admin/import on the main listener, in bytes (default 10737418240)", func(c *Config, v string) (err error) {
		c.UploadLimit, err = strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("want a number of bytes, got %q", v)
		}
		return nil
	}, false},
	// No flag: a token on the command line would show in ps.
	{"", "PULLCACHE_ADMIN_TOKEN", "", func(c *Config, v string) error { c.AdminToken = v; return nil }, false},
	{"send-buffer", "PULLCACHE_SEND_BUFFER", "SO_SNDBUF of client connections in bytes; 0 kernel default, -1 auto (default -1)", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("want a number of bytes, 0 or -1, got %q", v)
		}
		c.SendBuffer = n
		return nil
	}, false},
	{"max-size", "PULLCACHE_MAX_SIZE", "bound on the cache's disk space, e.g. 200GiB or 80% of the filesystem (default: none)", func(c *Config, v string) error {
		return c.MaxSize.UnmarshalText([]byte(v))
	}, false},
	{"min-free", "PULLCACHE_MIN_FREE", "free space kept on the filesystem, e.g. 10GiB or 5% (default: 5% or 2GiB, whichever is smaller)", func(c *Config, v string) error {
		return c.MinFree.UnmarshalText([]byte(v))
	}, false},
	// TLS, logins and limits.
	{"tls-cert", "PULLCACHE_TLS_CERT", "PEM certificate (chain) for HTTPS; reloaded when it changes", func(c *Config, v string) error { c.TLS.Cert = v; return nil }, false},
	{"tls-key", "PULLCACHE_TLS_KEY", "PEM private key for HTTPS; reloaded when it changes", func(c *Config, v string) error { c.TLS.Key = v; return nil }, false},
	{"tls-client-ca", "PULLCACHE_TLS_CLIENT_CA_FILE", "PEM CAs whose client certificates are required (mutual TLS)", func(c *Config, v string) error { c.TLSClientCAFile = v; return nil }, false},
	{"htpasswd", "PULLCACHE_HTPASSWD", "htpasswd file of bcrypt entries: turns client logins on; reloaded when it changes", func(c *Config, v string) error { c.Auth.Htpasswd = v; return nil }, false},
	{"htgroup", "PULLCACHE_HTGROUP", "group file (group: user1 user2) for access rules; reloaded when it changes", func(c *Config, v string) error { c.Auth.Groups = v; return nil }, false},
	{"max-connections", "PULLCACHE_MAX_CONNECTIONS", "connections open at once, 0 no limit (default 10000)", intSetting(func(c *Config) *int { return &c.Limits.MaxConnections }), false},
	{"max-connections-per-client", "PULLCACHE_MAX_CONNECTIONS_PER_CLIENT", "connections open at once per client address, 0 no limit (default 0)", intSetting(func(c *Config) *int { return &c.Limits.MaxConnectionsPerClient }), false},
	{"max-requests-per-client", "PULLCACHE_MAX_REQUESTS_PER_CLIENT", "requests in flight per client address, beyond it 429; 0 no limit (default 0)", intSetting(func(c *Config) *int { return &c.Limits.MaxRequestsPerClient }), false},
	{"cluster-self", "PULLCACHE_CLUSTER_SELF", "this cluster member's URL as the others reach it (scheme://host:port)", func(c *Config, v string) error { c.Cluster.Self = v; return nil }, false},
	{"cluster-peers", "PULLCACHE_CLUSTER_PEERS", "the cluster's members' URLs, comma-separated, self included", func(c *Config, v string) error { c.Cluster.Peers = splitList(v); return nil }, false},
	{"cluster-peers-dns", "PULLCACHE_CLUSTER_PEERS_DNS", "a DNS name (A/AAAA, or SRV when it starts with _) re-resolved every few seconds to the cluster's members", func(c *Config, v string) error { c.Cluster.PeersDNS = v; return nil }, false},
	{"cluster-secret-file", "PULLCACHE_CLUSTER_SECRET_FILE", "file holding the secret the cluster's members share (at least 16 characters)", func(c *Config, v string) error { c.Cluster.SecretFile = v; return nil }, false},
	{"s3-endpoint", "PULLCACHE_S3_ENDPOINT", "URL of the S3-compatible server of the shared bucket (default: AWS's for the region)", func(c *Config, v string) error { c.Storage.S3.Endpoint = v; return nil }, false},
	{"s3-bucket", "PULLCACHE_S3_BUCKET", "bucket shared by the caches: blobs and manifests one fetched, the others serve (default: none)", func(c *Config, v string) error { c.Storage.S3.Bucket = v; return nil }, false},
	{"s3-region", "PULLCACHE_S3_REGION", "region that signs the bucket's requests (default us-east-1)", func(c *Config, v string) error { c.Storage.S3.Region = v; return nil }, false},
	{"s3-prefix", "PULLCACHE_S3_PREFIX", "prefix of every key in the bucket (default none)", func(c *Config, v string) error { c.Storage.S3.Prefix = v; return nil }, false},
	{"s3-path-style", "PULLCACHE_S3_PATH_STYLE", "address the bucket as ENDPOINT/BUCKET, as most S3-compatible servers want (default false)", func(c *Config, v string) error {
		b, err := parseBool(v)
		c.Storage.S3.PathStyle = b
		return err
	}, true},
	{"s3-ca-file", "PULLCACHE_S3_CA_FILE", "PEM CAs trusted for the bucket's server besides the system's", func(c *Config, v string) error { c.Storage.S3.CAFile = v; return nil }, false},
	{"s3-credentials-file", "PULLCACHE_S3_CREDENTIALS_FILE", "AWS shared credentials file for the bucket (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY take precedence)", func(c *Config, v string) error { c.Storage.S3.CredentialsFile = v; return nil }, false},
	{"log-level", "PULLCACHE_LOG_LEVEL", "debug, info, warn or error (default info)", func(c *Config, v string) error { c.Log.Level = v; return nil }, false},
	{"log-format", "PULLCACHE_LOG_FORMAT", "text or json (default text)", func(c *Config, v string) error { c.Log.Format = v; return nil }, false},
}

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("want true or false, got %q", v)
	}
	return b, nil
}

// flagValue holds a flag's text until Load applies it.
type flagValue struct {
	v       string
	boolean bool
}

func (f *flagValue) String() string     { return f.v }
func (f *flagValue) Set(v string) error { f.v = v; return nil }
func (f *flagValue) IsBoolFlag() bool   { return f.boolean }

// upstreamEnv holds comma-separated REGISTRY=URL pairs.
const upstreamEnv = "PULLCACHE_UPSTREAM"

// Flags are the command-line values of a subcommand that takes configuration.
type Flags struct {
	fs        *flag.FlagSet
	file      string
	upstreams []string
	values    map[string]*flagValue
}

// RegisterFlags defines the configuration flags on fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, values: map[string]*flagValue{}}
	fs.StringVar(&f.file, "config", "", "YAML configuration file (env PULLCACHE_CONFIG)")
	fs.Func("upstream", "REGISTRY=URL: serve REGISTRY from URL; repeatable (env "+upstreamEnv+", comma-separated)", func(v string) error {
		f.upstreams = append(f.upstreams, v)
		return nil
	})
	for _, s := range settings {
		if s.flag == "" {
			continue // environment and file only
		}
		v := &flagValue{boolean: s.boolean}
		fs.Var(v, s.flag, s.usage+" (env "+s.env+")")
		f.values[s.flag] = v
	}
	return f
}

// Load builds the configuration: defaults, then the file, then the
// environment, then the flags that were set. It does not validate.
func (f *Flags) Load(getenv func(string) string) (Config, error) {
	cfg := Default()
	file := f.file
	if file == "" {
		file = getenv("PULLCACHE_CONFIG")
	}
	if file != "" {
		if err := loadFile(&cfg, file); err != nil {
			return cfg, err
		}
	}
	if err := applyEnv(&cfg, getenv); err != nil {
		return cfg, err
	}
	return cfg, f.applyFlags(&cfg)
}

// LoadFile is the configuration a file gives on its own: the defaults,
// then the file. It does not validate, and reads no environment.
func LoadFile(path string) (Config, error) {
	cfg := Default()
	err := loadFile(&cfg, path)
	return cfg, err
}

func loadFile(cfg *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	return parseYAML(cfg, b, path)
}

// parseYAML decodes a config file over cfg; an unknown key is an error that
// names it.
func parseYAML(cfg *Config, b []byte, path string) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		msg := strings.ReplaceAll(err.Error(), "yaml: unmarshal errors:\n  ", "")
		msg = unknownKeyRE.ReplaceAllString(msg, `line $1: unknown key "$2"`)
		return fmt.Errorf("config file %s: %s", path, msg)
	}
	return nil
}

// unknownKeyRE rewrites yaml.v3's message for an unknown key.
var unknownKeyRE = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)

func applyEnv(cfg *Config, getenv func(string) string) error {
	for _, s := range settings {
		if v := getenv(s.env); v != "" {
			if err := s.apply(cfg, v); err != nil {
				return fmt.Errorf("%s: %w", s.env, err)
			}
		}
	}
	if v := getenv(upstreamEnv); v != "" {
		for _, spec := range strings.Split(v, ",") {
			if err := cfg.SetUpstream(strings.TrimSpace(spec)); err != nil {
				return fmt.Errorf("%s: %w", upstreamEnv, err)
			}
		}
	}
	return nil
}

func (f *Flags) applyFlags(cfg *Config) error {
	var err error
	f.fs.Visit(func(fl *flag.Flag) {
		for _, s := range settings {
			if s.flag != "" && s.flag == fl.Name && err == nil {
				if e := s.apply(cfg, f.values[s.flag].v); e != nil {
					err = fmt.Errorf("--%s: %w", s.flag, e)
				}
			}
		}
	})
	if err != nil {
		return err
	}
	for _, spec := range f.upstreams {
		if err := cfg.SetUpstream(spec); err != nil {
			return fmt.Errorf("--upstream: %w", err)
		}
	}
	return nil
}
