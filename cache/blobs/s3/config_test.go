package s3

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/cache/blobs"
	"github.com/pullcache/pullcache/cache/blobs/blobstest"
)

func TestConfigRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"no bucket", Config{}},
		{"parts under 5 MiB", Config{Bucket: "b", PartSize: 1 << 20}},
		{"missing CA file", Config{Bucket: "b", CAFile: filepath.Join(t.TempDir(), "none.pem")}},
		{"CA file without PEM", Config{Bucket: "b", CAFile: writeFile(t, "ca.pem", "not a certificate")}},
	} {
		if _, err := New(t.Context(), c.cfg); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// TestCAFile reaches a server on TLS whose certificate only CAFile trusts;
// without it the same request fails verification.
func TestCAFile(t *testing.T) {
	s := startVersitygwWith(t, true)
	tier := s.tier(t)
	b, h := blobstest.Blob(t, 1000, 1)
	put(t, tier, h, b)
	if _, err := tier.Stat(t.Context(), h); err != nil {
		t.Fatalf("stat over TLS with the CA file: %v", err)
	}
	untrusting, err := New(t.Context(), Config{Endpoint: s.endpoint, Bucket: testBucket, Prefix: tier.prefix, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = untrusting.Stat(t.Context(), h)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("stat without the CA file: %v, want an unknown authority", err)
	}
}

// TestCredentialsFile signs with keys from a shared credentials file when
// the environment has none, and is refused with a wrong secret.
func TestCredentialsFile(t *testing.T) {
	s := startVersitygw(t)
	prefix := s.tier(t).prefix
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	_, h := blobstest.Blob(t, 100, 2)
	for _, c := range []struct {
		secret string
		ok     bool
	}{{testSecretKey, true}, {"wrong-secret", false}} {
		file := writeFile(t, "credentials", "[default]\naws_access_key_id = "+testAccessKey+"\naws_secret_access_key = "+c.secret+"\n")
		tier, err := New(t.Context(), Config{Endpoint: s.endpoint, Bucket: testBucket, Prefix: prefix, PathStyle: true, CredentialsFile: file})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tier.Stat(t.Context(), h)
		if c.ok != errors.Is(err, blobs.ErrNotFound) {
			t.Errorf("secret %q: stat of an absent blob: %v", c.secret, err)
		}
	}
}

func put(t *testing.T, tier *Tier, h v1.Hash, b []byte) {
	t.Helper()
	w, err := tier.Create(t.Context(), h, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeCertificate writes a self-signed certificate for 127.0.0.1 and its key.
func writeCertificate(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pullcache test S3"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}
