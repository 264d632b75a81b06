package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/pullcache/pullcache/config"
)

func TestCredentials(t *testing.T) {
	const env = "PULLCACHE_TEST_REGISTRY_PASSWORD"
	dockerConfig := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("kc-user:kc-pass"))
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"),
		[]byte(`{"auths":{"ghcr.io":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		rc      config.Registry
		envVal  string
		want    authn.AuthConfig
		wantErr string // part of the error; "" for none
	}{
		{name: "anonymous", rc: config.Registry{}, want: authn.AuthConfig{}},
		{name: "username and password", rc: config.Registry{Username: "ci", Password: "pw"},
			want: authn.AuthConfig{Username: "ci", Password: "pw"}},
		{name: "username, no password", rc: config.Registry{Username: "ci"},
			want: authn.AuthConfig{Username: "ci"}},
		{name: "password_env set", rc: config.Registry{Username: "ci", PasswordEnv: env}, envVal: "from-env",
			want: authn.AuthConfig{Username: "ci", Password: "from-env"}},
		{name: "password_env empty", rc: config.Registry{Username: "ci", PasswordEnv: env}, envVal: "",
			wantErr: "environment variable " + env + " (password_env) is empty"},
		{name: "keychain", rc: config.Registry{Keychain: true},
			want: authn.AuthConfig{Username: "kc-user", Password: "kc-pass"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(env, tc.envVal)
			t.Setenv("DOCKER_CONFIG", dockerConfig)
			a, err := upstreamCredentials("ghcr.io", tc.rc)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("credentials: %v, want an error containing %q", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "ghcr.io") {
					t.Errorf("error %q does not name the registry", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("credentials: %v", err)
			}
			got, err := authn.Authorization(t.Context(), a)
			if err != nil {
				t.Fatal(err)
			}
			if *got != tc.want {
				t.Errorf("credentials: %+v, want %+v", *got, tc.want)
			}
		})
	}
}

// testCA is a CA and a server certificate for 127.0.0.1 signed by it.
type testCA struct {
	caPEM           []byte
	certPEM, keyPEM []byte
	leaf            *x509.Certificate
	otherCertPEM    []byte // a certificate whose key is not keyPEM
}

func newCLITestCA(t *testing.T) testCA {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cli test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(serial int64) (*x509.Certificate, []byte, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore:   now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key
	}
	leaf, certPEM, key := sign(2)
	_, otherPEM, _ := sign(3)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{
		caPEM:        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPEM:      certPEM,
		keyPEM:       pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		leaf:         leaf,
		otherCertPEM: otherPEM,
	}
}

func TestTLSConfig(t *testing.T) {
	ca := newCLITestCA(t)
	dir := t.TempDir()
	file := func(name string, content []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := file("ca.pem", ca.caPEM)
	notPEM := file("not.pem", []byte("this is not a certificate\n"))
	certFile := file("cert.pem", ca.certPEM)
	keyFile := file("key.pem", ca.keyPEM)
	otherCert := file("other.pem", ca.otherCertPEM)
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name    string
		rc      config.Registry
		wantErr string // parts of the error, "|"-separated; "" for none
		// trusts: the config's roots verify the test CA's server certificate.
		trusts, nilConf bool
		clientCerts     int
	}{
		{name: "nothing configured", rc: config.Registry{}, nilConf: true},
		{name: "CA bundle", rc: config.Registry{CAFile: caFile}, trusts: true},
		{name: "CA file without PEM", rc: config.Registry{CAFile: notPEM}, wantErr: "ca_file|" + notPEM + "|no PEM certificate"},
		{name: "CA file missing", rc: config.Registry{CAFile: missing}, wantErr: "ca_file|missing.pem"},
		{name: "client certificate", rc: config.Registry{CertFile: certFile, KeyFile: keyFile}, clientCerts: 1},
		{name: "client certificate and CA", rc: config.Registry{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}, trusts: true, clientCerts: 1},
		{name: "certificate not matching the key", rc: config.Registry{CertFile: otherCert, KeyFile: keyFile}, wantErr: "client certificate"},
		{name: "key file missing", rc: config.Registry{CertFile: certFile, KeyFile: missing}, wantErr: "client certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := tlsConfig("tls.lan", tc.rc)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatal("tlsConfig succeeded, want an error")
				}
				for _, part := range append(strings.Split(tc.wantErr, "|"), "tls.lan") {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not contain %q", err, part)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("tlsConfig: %v", err)
			}
			if tc.nilConf {
				if conf != nil {
					t.Errorf("tlsConfig = %+v, want nil (the system's defaults)", conf)
				}
				return
			}
			if conf == nil {
				t.Fatal("tlsConfig = nil")
			}
			if tc.trusts {
				if _, err := ca.leaf.Verify(x509.VerifyOptions{Roots: conf.RootCAs}); err != nil {
					t.Errorf("the configured roots do not verify a certificate of the CA: %v", err)
				}
			}
			if len(conf.Certificates) != tc.clientCerts {
				t.Errorf("%d client certificates, want %d", len(conf.Certificates), tc.clientCerts)
			}
		})
	}
}

// TestCertWithoutKeyRejected: config validation refuses a client
// certificate without its key (and the reverse) before any file is read.
func TestCertWithoutKeyRejected(t *testing.T) {
	tests := []struct {
		name string
		rc   config.Registry
	}{
		{"cert only", config.Registry{CertFile: "/x/cert.pem"}},
		{"key only", config.Registry{KeyFile: "/x/key.pem"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Registries["tls.lan"] = tc.rc
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), "registries.tls.lan: cert_file and key_file go together") {
				t.Errorf("Validate: %v, want cert_file and key_file go together", err)
			}
		})
	}
}
