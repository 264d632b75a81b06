package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestTLSAndAuthSettingsByFlagEnvAndFile(t *testing.T) {
	file := `
tls: {cert: /f/cert.pem, key: /f/key.pem}
tls_client_ca_file: /f/ca.pem
auth:
  htpasswd: /f/htpasswd
  groups: /f/htgroup
  admins: [ops]
  token_ttl: 2m
  login_failures: 5
  login_window: 30s
access:
  - registries: ["docker.io", "registry.k8s.io"]
    anonymous: true
  - registries: ["ghcr.io"]
    repositories: ["myorg/*"]
    users: ["ci", "deploy"]
    groups: ["ops"]
limits: {max_connections: 500, max_connections_per_client: 50, max_requests_per_client: 20}
`
	c, err := load(t, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.TLS.Cert != "/f/cert.pem" || c.TLS.Key != "/f/key.pem" || c.TLSClientCAFile != "/f/ca.pem" {
		t.Errorf("tls from the file: %+v %q", c.TLS, c.TLSClientCAFile)
	}
	if c.Auth.Htpasswd != "/f/htpasswd" || c.Auth.Groups != "/f/htgroup" || len(c.Auth.Admins) != 1 {
		t.Errorf("auth from the file: %+v", c.Auth)
	}
	if time.Duration(c.Auth.TokenTTL) != 2*time.Minute || c.Auth.LoginFailures != 5 || time.Duration(c.Auth.LoginWindow) != 30*time.Second {
		t.Errorf("auth timings from the file: %+v", c.Auth)
	}
	if len(c.Access) != 2 || !c.Access[0].Anonymous || c.Access[1].Repositories[0] != "myorg/*" || c.Access[1].Users[1] != "deploy" {
		t.Errorf("access from the file: %+v", c.Access)
	}
	if c.Limits != (Limits{500, 50, 20}) {
		t.Errorf("limits from the file: %+v", c.Limits)
	}

	env := map[string]string{"PULLCACHE_TLS_CERT": "/e/cert.pem", "PULLCACHE_TLS_KEY": "/e/key.pem", "PULLCACHE_HTPASSWD": "/e/htpasswd", "PULLCACHE_MAX_REQUESTS_PER_CLIENT": "7"}
	c, err = load(t, file, env, "--tls-key", "/flag/key.pem", "--htgroup", "/flag/htgroup", "--max-connections", "0")
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.Cert != "/e/cert.pem" || c.TLS.Key != "/flag/key.pem" || c.Auth.Htpasswd != "/e/htpasswd" || c.Auth.Groups != "/flag/htgroup" {
		t.Errorf("env and flags over the file: %+v %+v", c.TLS, c.Auth)
	}
	if c.Limits.MaxRequestsPerClient != 7 || c.Limits.MaxConnections != 0 {
		t.Errorf("limits from env and flags: %+v", c.Limits)
	}
}

func TestSecurityDefaultsOff(t *testing.T) {
	c := Default()
	if c.AuthEnabled() || c.TLSEnabled() {
		t.Error("logins or TLS on by default")
	}
	if c.Limits.MaxConnections != 10000 || c.Limits.MaxConnectionsPerClient != 0 || c.Limits.MaxRequestsPerClient != 0 {
		t.Errorf("default limits %+v", c.Limits)
	}
}

func TestValidateSecurity(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"cert without key", func(c *Config) { c.TLS.Cert = "c" }, "tls.cert and tls.key"},
		{"client CA without TLS", func(c *Config) { c.TLSClientCAFile = "ca" }, "tls_client_ca_file"},
		{"access without logins", func(c *Config) { c.Access = []AccessRule{{Anonymous: true}} }, "access: needs auth.htpasswd"},
		{"admins without logins", func(c *Config) { c.Auth.Admins = []string{"x"} }, "auth.admins"},
		{"relative realm", func(c *Config) { c.Auth.Htpasswd = "h"; c.Auth.Realm = "/auth/token" }, "auth.realm"},
		{"catch-all before other rules", func(c *Config) {
			c.Auth.Htpasswd = "h"
			c.Access = []AccessRule{{Users: []string{"*"}}, {Registries: []string{"ghcr.io"}}}
		}, "access[0]"},
		{"negative limit", func(c *Config) { c.Limits.MaxRequestsPerClient = -1 }, "limits"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestExampleConfigFileLoads(t *testing.T) {
	b, err := os.ReadFile("../deploy/pullcache.yml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := load(t, string(b), nil)
	if err != nil {
		t.Fatalf("deploy/pullcache.yml: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("deploy/pullcache.yml: %v", err)
	}
}
