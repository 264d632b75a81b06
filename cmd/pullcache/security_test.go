package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pullcache/pullcache/config"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })

// connWatch records the server's connections by client address.
type connWatch struct {
	mu     sync.Mutex
	active map[string]bool
	closed map[string]bool
	newC   chan string
	closeC chan string
}

func newConnWatch() *connWatch {
	return &connWatch{active: map[string]bool{}, closed: map[string]bool{}, newC: make(chan string, 1024), closeC: make(chan string, 1024)}
}

func (w *connWatch) hook(c net.Conn, s http.ConnState) {
	addr := c.RemoteAddr().String()
	w.mu.Lock()
	defer w.mu.Unlock()
	switch s {
	case http.StateNew:
		w.active[addr] = true
		w.newC <- addr
	case http.StateClosed, http.StateHijacked:
		delete(w.active, addr)
		w.closed[addr] = true
		w.closeC <- addr
	}
}

func (w *connWatch) wasClosed(addr string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed[addr]
}

// startServer serves h as serve does (newHTTPServer, limits, TLS when tc
// is set) on a loopback port; mod adjusts the server before it starts.
func startServer(t *testing.T, h http.Handler, tc *tls.Config, limits config.Limits, mod func(*http.Server)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = limitConnections(ln, limits.MaxConnections, limits.MaxConnectionsPerClient, slog.New(slog.DiscardHandler))
	hs := newHTTPServer(limitRequests(h, limits.MaxRequestsPerClient), slog.New(slog.DiscardHandler))
	hs.TLSConfig = tc
	if mod != nil {
		mod(hs)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = serveOn(hs, ln)
	}()
	t.Cleanup(func() {
		hs.Close()
		<-done
	})
	return ln.Addr().String()
}

func oneShotClient() *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
}

// TestSlowlorisDoesNotStopOthers holds 200 connections that send half a
// request header and stop, then checks other clients are served while all
// 200 still hang. ReadHeaderTimeout is set out of reach here so that the
// 200 provably hang for the whole test however loaded the machine is;
// TestReadHeaderTimeoutClosesSlowClients checks the timeout itself.
func TestSlowlorisDoesNotStopOthers(t *testing.T) {
	w := newConnWatch()
	addr := startServer(t, okHandler, nil, config.Default().Limits, func(hs *http.Server) {
		hs.ReadHeaderTimeout = time.Hour
		hs.ConnState = w.hook
	})
	slow := map[string]net.Conn{}
	for range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /v2/ HTTP/1.1\r\nHost: mirror\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		slow[c.LocalAddr().String()] = c
	}
	for seen := 0; seen < len(slow); {
		if slow[<-w.newC] != nil {
			seen++
		}
	}
	client := oneShotClient()
	for i := range 20 {
		resp, err := client.Get("http://" + addr + "/v2/")
		if err != nil {
			t.Fatalf("request %d while 200 slow clients hang: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %s", i, resp.Status)
		}
	}
	for a := range slow {
		if w.wasClosed(a) {
			t.Fatalf("slow connection %s was closed before the others were served", a)
		}
	}
}

func TestReadHeaderTimeoutClosesSlowClients(t *testing.T) {
	addr := startServer(t, okHandler, nil, config.Limits{}, func(hs *http.Server) { hs.ReadHeaderTimeout = 50 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /v2/ HTTP/1.1\r\nHost: mirror\r\nX-Slow: ")
	_ = c.SetReadDeadline(time.Now().Add(time.Minute)) // a bound for the test, not a measurement
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("the server did not close the slow connection: %v", err)
	}
}

func TestConnectionsPerClientCapped(t *testing.T) {
	w := newConnWatch()
	addr := startServer(t, okHandler, nil, config.Limits{MaxConnectionsPerClient: 3}, func(hs *http.Server) { hs.ConnState = w.hook })
	get := func(c net.Conn) error {
		if _, err := io.WriteString(c, "GET /v2/ HTTP/1.1\r\nHost: mirror\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	var held []net.Conn
	for i := range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := get(c); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, c)
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if err := get(extra); err == nil {
		t.Fatal("a fourth connection from the address was served")
	}
	gone := held[0].LocalAddr().String()
	held[0].Close()
	for a := ""; a != gone; {
		a = <-w.closeC // the server has closed it, and so freed its slot
	}
	again, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := get(again); err != nil {
		t.Errorf("after one closed, a new connection: %v", err)
	}
}

func TestRequestsPerClientGet429(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	block := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			once.Do(func() { close(entered) })
			<-release
		}
		w.Write([]byte("ok"))
	})
	addr := startServer(t, block, nil, config.Limits{MaxRequestsPerClient: 1}, nil)
	client := oneShotClient()
	first := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/slow")
		if err == nil {
			resp.Body.Close()
		}
		first <- err
	}()
	<-entered
	resp, err := client.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !bytes.Contains(body, []byte(`"TOOMANYREQUESTS"`)) {
		t.Errorf("second request in flight: %s %s, want 429 TOOMANYREQUESTS", resp.Status, body)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	resp, err = client.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after the first finished: %s", resp.Status)
	}
}

// replaceFile writes content to path the way cert-manager and ACME
// clients do: a new file renamed over the old one.
func replaceFile(t *testing.T, path string, content []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func tlsClient(roots *x509.CertPool, mod func(*tls.Config)) *http.Client {
	tc := &tls.Config{RootCAs: roots}
	if mod != nil {
		mod(tc)
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, DisableKeepAlives: true}}
}

func peerCert(t *testing.T, client *http.Client, addr string) *x509.Certificate {
	t.Helper()
	resp, err := client.Get("https://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0]
}

func tlsSetup(t *testing.T) (cfg config.Config, a, b testCA, roots *x509.CertPool) {
	t.Helper()
	a, b = newCLITestCA(t), newCLITestCA(t)
	dir := t.TempDir()
	cfg = config.Default()
	cfg.TLS.Cert = filepath.Join(dir, "tls.crt")
	cfg.TLS.Key = filepath.Join(dir, "tls.key")
	replaceFile(t, cfg.TLS.Cert, a.certPEM)
	replaceFile(t, cfg.TLS.Key, a.keyPEM)
	roots = x509.NewCertPool()
	roots.AppendCertsFromPEM(a.caPEM)
	roots.AppendCertsFromPEM(b.caPEM)
	return cfg, a, b, roots
}

func TestCertificateReloadedWhenFilesChange(t *testing.T) {
	cfg, a, b, roots := tlsSetup(t)
	var logs syncBuffer
	tc, err := serverTLS(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, okHandler, tc, config.Limits{}, nil)
	client := tlsClient(roots, nil)
	if got := peerCert(t, client, addr); !got.Equal(a.leaf) {
		t.Fatal("first handshake: not the configured certificate")
	}
	// Half a rotation: the new certificate with the old key. The old pair
	// stays in use.
	replaceFile(t, cfg.TLS.Cert, b.certPEM)
	if got := peerCert(t, client, addr); !got.Equal(a.leaf) {
		t.Error("a certificate without its key replaced the working pair")
	}
	replaceFile(t, cfg.TLS.Key, b.keyPEM)
	if got := peerCert(t, client, addr); !got.Equal(b.leaf) {
		t.Error("the next handshake after the swap did not use the new certificate")
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("the reload was not logged:\n%s", logs.String())
	}
}

func TestTLSVersionsAndHTTP2(t *testing.T) {
	cfg, _, _, roots := tlsSetup(t)
	tc, err := serverTLS(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, okHandler, tc, config.Limits{}, nil)
	resp, err := tlsClient(roots, nil).Get("https://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2 on TLS", resp.Proto)
	}
	_, err = tlsClient(roots, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS11 }).Get("https://" + addr + "/v2/")
	if err == nil {
		t.Error("a TLS 1.1 client was served")
	}
}

func TestMutualTLS(t *testing.T) {
	cfg, a, _, roots := tlsSetup(t)
	cfg.TLSClientCAFile = filepath.Join(t.TempDir(), "clients.pem")
	if err := os.WriteFile(cfg.TLSClientCAFile, a.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	tc, err := serverTLS(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, okHandler, tc, config.Limits{}, nil)
	if _, err := tlsClient(roots, nil).Get("https://" + addr + "/v2/"); err == nil {
		t.Error("a client without a certificate was served")
	}
	pair, err := tls.X509KeyPair(a.certPEM, a.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	withCert := tlsClient(roots, func(c *tls.Config) { c.Certificates = []tls.Certificate{pair} })
	if _, err := withCert.Get("https://" + addr + "/v2/"); err != nil {
		t.Errorf("a client with a certificate of the CA: %v", err)
	}
}

func TestBadTLSFilesStopStartup(t *testing.T) {
	cfg, a, _, _ := tlsSetup(t)
	replaceFile(t, cfg.TLS.Cert, a.otherCertPEM) // not the key's certificate
	if _, err := serverTLS(cfg, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a certificate that does not match its key was accepted")
	}
	cfg.TLS.Cert = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := serverTLS(cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("a missing certificate: %v", err)
	}
}

func basicHeader(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestAdminOnListenerNeedsAnAdmin(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	var lines []string
	for _, u := range []string{"alice", "bob"} {
		h, _ := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		lines = append(lines, u+":"+string(h))
	}
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(cfg.Auth.Htpasswd, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Auth.Admins = []string{"alice"}
	cfg.AdminToken = "0123456789abcdef-token"
	log := slog.New(slog.DiscardHandler)
	store, err := openStore(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	logins, err := newLogins(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, adminOnListener(cfg, store, "", nil, log, logins), nil, config.Limits{}, nil)
	for authz, want := range map[string]int{
		"":                               401,
		basicHeader("bob", "bob-pw"):     403,
		basicHeader("alice", "wrong"):    401,
		basicHeader("alice", "alice-pw"): 200,
		"Bearer " + cfg.AdminToken:       200,
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/admin/info", nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := oneShotClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /admin/info with %q: %s, want %d", strings.Fields(authz + " -")[0], resp.Status, want)
		}
	}
	cfg.AdminToken = ""
	cfg.Auth.Admins = nil
	if h := adminOnListener(cfg, store, "", nil, log, logins); h != nil {
		t.Error("admin API mounted with neither admins nor a token")
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestWarmThroughTheSocketWithLoginsOn: warm needs no login, because it
// pulls through the admin socket, whose owner is trusted (over TCP the
// mirror, with no rule for anonymous clients, would refuse it).
func TestWarmThroughTheSocketWithLoginsOn(t *testing.T) {
	up, _ := newTestUpstream(t)
	data := t.TempDir()
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err := os.WriteFile(htpasswd, []byte("ci:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	serveInProcess(t, data, up.URL, func(c *config.Config) { c.Auth.Htpasswd = htpasswd })
	out := mustRun(t, "warm", "--data", data, "app:v1")
	if !strings.Contains(out, "warmed 1 of 1 images") {
		t.Fatalf("warm with logins on: %q", out)
	}
}

// readFromRecorder is a conn that records whether ReadFrom reached it.
type readFromRecorder struct {
	net.Conn
	called bool
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.called = true
	return io.Copy(io.Discard, src)
}

// TestLimitedConnKeepsSendfile: net/http uses sendfile only through the
// connection's ReadFrom; the limit's wrapper must pass it on.
func TestLimitedConnKeepsSendfile(t *testing.T) {
	inner := &readFromRecorder{}
	var c net.Conn = &limitedConn{Conn: inner}
	rf, ok := c.(io.ReaderFrom)
	if !ok {
		t.Fatal("limitedConn hides ReadFrom")
	}
	if _, err := rf.ReadFrom(strings.NewReader("blob")); err != nil {
		t.Fatal(err)
	}
	if !inner.called {
		t.Error("ReadFrom did not reach the TCP connection")
	}
}
