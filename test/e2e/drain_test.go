package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gatedBlobUpstream is a registry that has one blob and sends its first
// half at once and the rest only when release is closed: a transfer that
// is in flight for as long as the test wants.
type gatedBlobUpstream struct {
	srv     *httptest.Server
	blob    []byte
	digest  string
	release chan struct{}
}

func newGatedBlobUpstream(t *testing.T, size int) *gatedBlobUpstream {
	t.Helper()
	u := &gatedBlobUpstream{blob: make([]byte, size), release: make(chan struct{})}
	_, _ = rand.Read(u.blob)
	sum := sha256.Sum256(u.blob)
	u.digest = "sha256:" + hex.EncodeToString(sum[:])
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
		u.srv.CloseClientConnections()
		u.srv.Close()
	})
	return u
}

func (u *gatedBlobUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		_, _ = w.Write([]byte("{}"))
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/blobs/"+u.digest) {
		http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(u.blob)))
	w.Header().Set("Docker-Content-Digest", u.digest)
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.Method == http.MethodHead {
		return
	}
	half := len(u.blob) / 2
	_, _ = w.Write(u.blob[:half])
	http.NewResponseController(w).Flush()
	select {
	case <-u.release:
	case <-r.Context().Done():
		return
	}
	_, _ = w.Write(u.blob[half:])
}

// startTransfer GETs the blob through the mirror and returns once the
// first byte has arrived; the rest of the body and the read's error come
// on the channel.
func startTransfer(t *testing.T, mirror, digest string) <-chan transferResult {
	t.Helper()
	resp, err := http.Get("http://" + mirror + "/v2/library/slow/blobs/" + digest)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET blob: %s", resp.Status)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("first byte: %v", err)
	}
	done := make(chan transferResult, 1)
	go func() {
		defer resp.Body.Close()
		rest, err := io.ReadAll(resp.Body)
		done <- transferResult{append(first, rest...), err}
	}()
	return done
}

type transferResult struct {
	body []byte
	err  error
}

// readyz returns /readyz's status code and body.
func readyz(t *testing.T, mirror string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + mirror + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sigterm signals p and marks it stopped, so the cleanup does not signal
// it again; it returns when the signal was sent.
func sigterm(t *testing.T, p *pullcache) time.Time {
	t.Helper()
	p.stopOnce.Do(func() {})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return time.Now()
}

// waitReadyz polls /readyz every 5 ms for up to a second until it
// answers want.
func waitReadyz(t *testing.T, mirror string, want int) string {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Second)
	for {
		code, body := readyz(t, mirror)
		if code == want {
			return body
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("/readyz did not answer %d within 1s: last %d %s", want, code, body)
		}
	}
}

// TestSIGTERMDrainsTransfersInFlight: on SIGTERM during a slow cold
// transfer, /readyz answers 503 at once while the transfer goes on; it
// completes with every byte, and the process exits 0 right after, within
// shutdown_grace.
func TestSIGTERMDrainsTransfersInFlight(t *testing.T) {
	requireE2E(t)
	up := newGatedBlobUpstream(t, 4<<20)
	p := startPullcache(t, t.TempDir(), map[string]string{"docker.io": up.srv.URL}, "--shutdown-grace", "8s")
	// Ready once the index has been read (in the background at start-up).
	waitReadyz(t, p.addr, http.StatusOK)
	transfer := startTransfer(t, p.addr, up.digest)
	sent := sigterm(t, p)
	body := waitReadyz(t, p.addr, http.StatusServiceUnavailable)
	t.Logf("/readyz answered 503 %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
	if !strings.Contains(body, "draining") {
		t.Errorf("/readyz body %s does not name draining", body)
	}
	select {
	case <-p.done:
		t.Fatalf("pullcache exited with a transfer in flight: %v", p.err)
	default:
	}
	released := time.Now()
	close(up.release)
	res := <-transfer
	if res.err != nil {
		t.Fatalf("transfer broken: %v", res.err)
	}
	if sum := sha256.Sum256(res.body); "sha256:"+hex.EncodeToString(sum[:]) != up.digest {
		t.Errorf("transfer got %d bytes not matching the digest", len(res.body))
	}
	select {
	case <-p.done:
	case <-time.After(8 * time.Second):
		t.Fatalf("pullcache still running 8s after the transfer finished")
	}
	if p.err != nil {
		t.Errorf("pullcache exit: %v", p.err)
	}
	t.Logf("exited %s after the transfer was released, %s after SIGTERM",
		time.Since(released).Round(time.Millisecond), time.Since(sent).Round(time.Millisecond))
	if took := time.Since(sent); took > 8*time.Second {
		t.Errorf("exited %s after SIGTERM, beyond shutdown_grace 8s", took)
	}
	if !strings.Contains(p.logs.String(), "msg=drained") {
		t.Errorf("no drained line in the log:\n%s", p.logs.String())
	}
}

// TestSIGTERMGraceBoundsTheDrain: a transfer that does not finish within
// shutdown_grace is cut (the client sees a broken body, never a short
// complete one) and the process exits soon after the grace.
func TestSIGTERMGraceBoundsTheDrain(t *testing.T) {
	requireE2E(t)
	up := newGatedBlobUpstream(t, 4<<20)
	p := startPullcache(t, t.TempDir(), map[string]string{"docker.io": up.srv.URL}, "--shutdown-grace", "2s")
	transfer := startTransfer(t, p.addr, up.digest)
	sent := sigterm(t, p)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("pullcache still running 10s after SIGTERM with shutdown_grace 2s")
	}
	took := time.Since(sent)
	t.Logf("exited %s after SIGTERM (shutdown_grace 2s)", took.Round(time.Millisecond))
	if took < 2*time.Second {
		t.Errorf("exited %s after SIGTERM, before the 2s grace ran out", took)
	}
	if took > 4*time.Second {
		t.Errorf("exited %s after SIGTERM, well past the 2s grace", took)
	}
	if res := <-transfer; res.err == nil {
		t.Errorf("the cut transfer read %d bytes and ended cleanly; want a broken body", len(res.body))
	}
	if !strings.Contains(p.logs.String(), "shutdown grace ran out") {
		t.Errorf("no line saying the grace ran out:\n%s", p.logs.String())
	}
}
