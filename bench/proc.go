package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a server gets to exit after SIGTERM before SIGKILL.
const stopGrace = 10 * time.Second

// proc is one server started by the benchmark. It runs in its own process
// group so that a terminal's Ctrl-C reaches only the benchmark, which then
// stops every server in order, and so that stopping it also stops its
// children (nginx workers).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result; read only after done is closed
}

// startProc starts argv with its stdout and stderr appended to logPath.
func startProc(name, logPath string, env []string, argv ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: open log: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), env...)
	// Pdeathsig is the safety net for a benchmark killed with SIGKILL: the
	// servers die with it instead of lingering on their ports.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, argv[0], err)
	}
	p := &proc{name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// pid is the process id of the server (the nginx master for nginx).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM to the process group, then SIGKILL after stopGrace.
// It is safe to call more than once and on a process that already exited.
func (p *proc) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// procSet remembers every server started during one run so that all of them
// are stopped on every exit path.
type procSet struct {
	mu    sync.Mutex
	procs []*proc
}

func (s *procSet) add(p *proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs = append(s.procs, p)
}

// stopAll stops the servers in reverse order of start.
func (s *procSet) stopAll() {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Readiness polling: each attempt is a real HTTP request; attempts are
// bounded in number and spaced by a ticker, not a sleep.
const (
	readyAttempts = 300
	readyInterval = 50 * time.Millisecond
)

// waitReady polls url until any HTTP response comes back, the process exits,
// the attempts run out or ctx ends.
func waitReady(ctx context.Context, p *proc, url string) error {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(readyInterval)
	defer tick.Stop()
	var lastErr error
	for range readyAttempts {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("%s: probe: %w", p.name, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: wait for %s: %w", p.name, url, ctx.Err())
		case <-p.done:
			return fmt.Errorf("%s exited before listening (%v); see %s", p.name, p.err, p.log.Name())
		case <-tick.C:
		}
	}
	return fmt.Errorf("%s: not ready after %d probes of %s: %w", p.name, readyAttempts, url, lastErr)
}

// userHZ is the kernel's clock-tick rate for /proc times; it is 100 on every
// Linux architecture Go supports.
const userHZ = 100

// serverCPU returns the user+system CPU seconds of pid and its direct
// children (nginx's workers).
func serverCPU(pid int) (float64, error) {
	pids, err := withChildren(pid)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, p := range pids {
		sec, err := processCPU(p)
		if err != nil {
			return 0, err
		}
		sum += sec
	}
	return sum, nil
}

// processCPU returns the user+system CPU seconds of all threads of pid,
// from /proc/PID/stat.
func processCPU(pid int) (float64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	// Fields after "pid (comm) ": [0] is state (field 3), so utime (field
	// 14) and stime (field 15) are [11] and [12].
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return float64(ticks) / userHZ, nil
}

// statFields returns the fields of /proc/PID/stat after the command name.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, fmt.Errorf("read stat: %w", err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return nil, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return f, nil
}

// withChildren returns pid followed by the pids whose parent is pid.
func withChildren(pid int) ([]int, error) {
	pids := []int{pid}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		f, err := statFields(child)
		if err != nil {
			continue // exited meanwhile
		}
		if f[1] == strconv.Itoa(pid) { // field 4, ppid
			pids = append(pids, child)
		}
	}
	return pids, nil
}

// peakRSS returns VmHWM (the resident set's high-water mark) of pid in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return parseKB(rest)
		}
	}
	return 0, errors.New("no VmHWM in /proc/PID/status")
}

// parseKB parses "  12345 kB" into bytes.
func parseKB(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("unexpected size %q", s)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse size %q: %w", s, err)
	}
	return n * 1024, nil
}

// mkdirs creates each directory under root and returns their paths.
func mkdirs(root string, names ...string) ([]string, error) {
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = filepath.Join(root, n)
		if err := os.MkdirAll(paths[i], 0o755); err != nil {
			return nil, fmt.Errorf("mkdir: %w", err)
		}
	}
	return paths, nil
}
