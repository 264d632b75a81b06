package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/pullcache/pullcache/config"
	"github.com/pullcache/pullcache/proxy"
	"github.com/pullcache/pullcache/upstream"
)

// allowedLabel is the metric label every registry admitted by an allow
// pattern shares: their names are the clients' to choose, and a label
// value per name would grow without bound.
const allowedLabel = "allowed"

// newUpstreams builds a client for every configured registry; m (nil:
// none) is told of their health.
func newUpstreams(cfg config.Config, log *slog.Logger, m *upstream.Metrics) (map[string]proxy.Upstream, error) {
	ups := map[string]proxy.Upstream{}
	for _, n := range cfg.RegistryNames() {
		up, err := newUpstream(cfg, n, log, m, n)
		if err != nil {
			return nil, err
		}
		ups[n] = up
	}
	return ups, nil
}

// allowUpstream returns the function that builds a client, with default
// settings, for a registry the allow-list admits; nil when there is none.
func allowUpstream(cfg config.Config, log *slog.Logger, m *upstream.Metrics) func(string) (proxy.Upstream, bool) {
	if len(cfg.Allow) == 0 {
		return nil
	}
	return func(registry string) (proxy.Upstream, bool) {
		if !cfg.Allowed(registry) {
			return nil, false
		}
		up, err := newUpstream(cfg, registry, log, m, allowedLabel)
		if err != nil {
			log.Warn("allowed registry", "registry", registry, "err", err)
			return nil, false
		}
		return up, true
	}
}

func newUpstream(cfg config.Config, regName string, log *slog.Logger, m *upstream.Metrics, label string) (*upstream.Registry, error) {
	rc := cfg.Registries[regName]
	creds, err := upstreamCredentials(regName, rc)
	if err != nil {
		return nil, err
	}
	tlsConf, err := tlsConfig(regName, rc)
	if err != nil {
		return nil, err
	}
	timeouts := upstream.DefaultTimeouts
	if rc.Timeout > 0 {
		timeouts.Dial = time.Duration(rc.Timeout)
		timeouts.ResponseHeader = time.Duration(rc.Timeout)
	}
	return upstream.New(upstream.Options{
		Name:           regName,
		Endpoints:      cfg.EndpointsOf(regName),
		Credentials:    creds,
		TLS:            tlsConf,
		LAN:            cfg.IsLAN(regName),
		MaxConcurrency: rc.MaxConcurrency,
		Timeouts:       timeouts,
		Logger:         log,
		Metrics:        m,
		MetricLabel:    label,
	})
}

func tlsConfig(regName string, rc config.Registry) (*tls.Config, error) {
	if rc.CAFile == "" && rc.CertFile == "" {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if rc.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(rc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("registry %s: ca_file: %w", regName, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry %s: ca_file %s holds no PEM certificate", regName, rc.CAFile)
		}
		conf.RootCAs = pool
	}
	if rc.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(rc.CertFile, rc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("registry %s: client certificate: %w", regName, err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}
