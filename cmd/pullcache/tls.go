package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/pullcache/pullcache/config"
)

// serverTLS is the registry API's TLS: Go's defaults from TLS 1.2 up, the
// certificate reloaded when its files change, and client certificates
// required when tls_client_ca_file is set. nil when TLS is off.
func serverTLS(cfg config.Config, log *slog.Logger) (*tls.Config, error) {
	if !cfg.TLSEnabled() {
		return nil, nil
	}
	certs, err := newCertReloader(cfg.TLS.Cert, cfg.TLS.Key, log)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if cfg.TLSClientCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_client_ca_file %s: no PEM certificate in it", cfg.TLSClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// certReloader hands out the certificate of two PEM files, loading them
// again when either changed (one stat each per handshake: cert-manager and
// ACME clients replace them in place or through a symlink). A pair that
// does not load — a rotation caught half-way — keeps the last good
// certificate in use until the files change again.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu     sync.Mutex
	cert   *tls.Certificate
	stamps [2]os.FileInfo
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	stamps, err := c.stat()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert/tls.key: %w", err)
	}
	c.cert, c.stamps = &cert, stamps
	return c, nil
}

// GetCertificate is tls.Config's hook: the current certificate.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamps, err := c.stat()
	if err != nil || sameStamps(stamps, c.stamps) {
		return c.cert, nil
	}
	c.stamps = stamps
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.log.Warn("TLS certificate not reloaded; the previous one stays in use", "cert", c.certFile, "err", err)
		return c.cert, nil
	}
	c.cert = &cert
	c.log.Info("TLS certificate reloaded", "cert", c.certFile)
	return c.cert, nil
}

func (c *certReloader) stat() ([2]os.FileInfo, error) {
	var out [2]os.FileInfo
	for i, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return out, fmt.Errorf("tls: %w", err)
		}
		out[i] = fi
	}
	return out, nil
}

func sameStamps(a, b [2]os.FileInfo) bool {
	for i := range a {
		if a[i] == nil || b[i] == nil {
			return false
		}
		if !os.SameFile(a[i], b[i]) || !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size() {
			return false
		}
	}
	return true
}
