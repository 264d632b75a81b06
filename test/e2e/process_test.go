package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// cmdTimeout bounds every client command.
	cmdTimeout = 2 * time.Minute
	// startTimeout bounds how long a server may take to start listening.
	startTimeout = 30 * time.Second
	// stopTimeout bounds how long a server may take to exit on SIGTERM.
	stopTimeout = 30 * time.Second
)

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
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

// run runs a command with a timeout and returns its standard output. It logs
// the command line; on failure it fails t with the command and its combined
// output.
func run(ctx context.Context, t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	stdout, combined, err := runErr(ctx, t, env, name, args...)
	if err != nil {
		t.Fatalf("$ %s\nfailed: %v\n%s", cmdLine(env, name, args), err, combined)
	}
	return stdout
}

// runErr is run without the failing: it returns standard output, the
// combined output and the error.
func runErr(ctx context.Context, t *testing.T, env []string, name string, args ...string) (stdout, combined string, err error) {
	t.Helper()
	return runIn(ctx, t, append(os.Environ(), env...), env, name, args...)
}

// runIn runs name with exactly the environment env; logged are only the
// variables shown (the rest is this process's, and may hold secrets).
func runIn(ctx context.Context, t *testing.T, env, shown []string, name string, args ...string) (stdout, combined string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	var out bytes.Buffer
	var both syncBuffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdout = io.MultiWriter(&out, &both)
	cmd.Stderr = &both
	cmd.WaitDelay = 10 * time.Second // a stray grandchild holding the pipes must not hang us
	t.Logf("$ %s", cmdLine(shown, name, args))
	start := time.Now()
	err = cmd.Run()
	if err != nil && ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	if err == nil {
		t.Logf("  (%s ok in %s)", name, time.Since(start).Round(time.Millisecond))
	}
	return out.String(), both.String(), err
}

func cmdLine(env []string, name string, args []string) string {
	parts := append(append(append([]string(nil), env...), name), args...)
	return strings.Join(parts, " ")
}

// pullcache is a running pullcache server.
type pullcache struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string      // host:port it listens on
	logs *syncBuffer // everything it wrote to stderr
	done chan struct{}
	err  error // cmd.Wait's result, set before done is closed

	stopOnce sync.Once
}

// startPullcache starts `pullcache serve` on a free port of 127.0.0.1 with
// data directory dataDir, upstreams as registry=URL, and extra flags, and
// waits until it logs that it is listening. It is stopped when t ends.
func startPullcache(t *testing.T, dataDir string, upstreams map[string]string, extra ...string) *pullcache {
	t.Helper()
	if pullcacheBin == "" {
		t.Fatal("pullcache binary not built (TestMain builds it when PULLCACHE_E2E=1)")
	}
	args := []string{"serve", "--listen", "127.0.0.1:0", "--data", dataDir}
	for reg, url := range upstreams {
		args = append(args, "--upstream", reg+"="+url)
	}
	args = append(args, extra...)
	cmd := exec.Command(pullcacheBin, args...)
	cmd.Env = serverEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &pullcache{t: t, cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	t.Logf("$ pullcache %s", strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pullcache: %v", err)
	}
	listening := make(chan string, 1)
	go p.drain(stderr, listening)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("pullcache log:\n%s", p.logs.String())
		}
	})

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case p.addr = <-listening:
		t.Logf("pullcache listening on %s", p.addr)
		return p
	case <-p.done:
		t.Fatalf("pullcache exited before listening: %v\n%s", p.err, p.logs.String())
	case <-timer.C:
		t.Fatalf("pullcache did not log msg=listening within %s\n%s", startTimeout, p.logs.String())
	}
	return nil
}

// serverEnv is this process's environment without PULLCACHE_* variables,
// which pullcache reads as configuration: the flags alone configure it here.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PULLCACHE_") {
			env = append(env, kv)
		}
	}
	return env
}

// drain copies the server's stderr into p.logs line by line, reports the
// address of the first "listening" line, then waits for the process.
func (p *pullcache) drain(stderr io.Reader, listening chan<- string) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	found := false
	for sc.Scan() {
		line := sc.Text()
		p.logs.Write([]byte(line + "\n"))
		if !found {
			if addr, ok := listeningAddr(line); ok {
				found = true
				listening <- addr
			}
		}
	}
	// Reading is finished, so Wait may close the pipe now (see exec.Cmd.StderrPipe).
	p.err = p.cmd.Wait()
	close(p.done)
}

// listeningAddr extracts addr from the server's "listening" log line, in
// slog's text format (msg=listening addr=127.0.0.1:PORT) or JSON format.
func listeningAddr(line string) (string, bool) {
	if strings.HasPrefix(line, "{") {
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
			return rec.Addr, true
		}
		return "", false
	}
	fields := strings.Fields(line)
	msg, addr := false, ""
	for _, f := range fields {
		if f == "msg=listening" {
			msg = true
		}
		if v, ok := strings.CutPrefix(f, "addr="); ok {
			addr = strings.Trim(v, `"`)
		}
	}
	return addr, msg && addr != ""
}

// stop sends SIGTERM and waits for the server to exit; it must exit 0.
// Calling it again does nothing.
func (p *pullcache) stop() {
	p.stopOnce.Do(func() {
		t := p.t
		t.Helper()
		select {
		case <-p.done:
			t.Errorf("pullcache exited on its own: %v", p.err)
			return
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("signalling pullcache: %v", err)
		}
		timer := time.NewTimer(stopTimeout)
		defer timer.Stop()
		select {
		case <-p.done:
			if p.err != nil {
				t.Errorf("pullcache did not exit cleanly on SIGTERM: %v", p.err)
			}
		case <-timer.C:
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("pullcache did not exit within %s of SIGTERM; killed", stopTimeout)
		}
	})
}
