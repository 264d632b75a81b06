package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
)

// server is one HTTP server under test: its process and base URL.
type server struct {
	proc *proc
	base string // http://127.0.0.1:PORT
	data string // data directory to delete when the server is replaced
}

// stopAndClean stops the server and deletes its data directory, so that cold
// rows do not fill the disk. A nil server is a no-op.
func (s *server) stopAndClean() {
	if s == nil {
		return
	}
	s.proc.stop()
	if s.data != "" {
		_ = os.RemoveAll(s.data)
	}
}

// launcher starts the servers of one run. Every process goes into procs, so
// nothing outlives the run; logs and data go under dir.
type launcher struct {
	tools tools
	dir   string
	procs *procSet
	seq   atomic.Int64 // numbers fresh data directories
}

// start picks a free port, launches the command argvFor builds for it,
// registers the process for cleanup and waits until probePath answers.
func (l *launcher) start(ctx context.Context, name string, env []string, argvFor func(port int) ([]string, error), probePath string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	argv, err := argvFor(port)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	logPath := filepath.Join(l.dir, "logs", name+".log")
	p, err := startProc(name, logPath, env, argv...)
	if err != nil {
		return nil, err
	}
	l.procs.add(p)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitReady(ctx, p, base+probePath); err != nil {
		p.stop()
		return nil, err
	}
	return &server{proc: p, base: base}, nil
}

// freshDir returns a new, empty directory for a server's data.
func (l *launcher) freshDir(prefix string) (string, error) {
	d := filepath.Join(l.dir, fmt.Sprintf("%s-%d", prefix, l.seq.Add(1)))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("mkdir: %w", err)
	}
	return d, nil
}

// startRegistry runs the reference registry on root. With remote set it is a
// pull-through proxy of remote (the anchor); otherwise it is the upstream.
// The upstream logs only errors so that its logging costs nothing in the
// cold rows; the proxy keeps the registry's default logging, as shipped.
func (l *launcher) startRegistry(ctx context.Context, name, root, remote string) (*server, error) {
	argv := func(port int) ([]string, error) {
		cfg := fmt.Sprintf(`version: 0.1
storage:
  filesystem: {rootdirectory: %q}
  delete: {enabled: true}
http: {addr: "127.0.0.1:%d"}
`, root, port)
		if remote == "" {
			cfg += "log: {level: error, accesslog: {disabled: true}}\n"
		} else {
			cfg += fmt.Sprintf("proxy: {remoteurl: %q, ttl: 168h}\n", remote)
		}
		path := filepath.Join(l.dir, name+".yml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return nil, fmt.Errorf("write config: %w", err)
		}
		return []string{l.tools.registry, "serve", path}, nil
	}
	// Without this the registry tries to export traces to a collector.
	env := []string{"OTEL_TRACES_EXPORTER=none"}
	return l.start(ctx, name, env, argv, "/v2/")
}

// startPullcache runs pullcache on a fresh data directory with docker.io
// mapped to upstream.
func (l *launcher) startPullcache(ctx context.Context, bin, upstream string, extra ...string) (*server, error) {
	data, err := l.freshDir("pullcache-data")
	if err != nil {
		return nil, err
	}
	argv := func(port int) ([]string, error) {
		return append([]string{bin, "serve",
			"--listen", "127.0.0.1:" + strconv.Itoa(port),
			"--data", data,
			"--upstream", "docker.io=" + upstream,
		}, extra...), nil
	}
	s, err := l.start(ctx, "pullcache", nil, argv, "/v2/")
	if err != nil {
		return nil, err
	}
	s.data = data
	return s, nil
}

// startProxyRegistry runs the reference registry in proxy mode on a fresh
// root directory.
func (l *launcher) startProxyRegistry(ctx context.Context, upstream string) (*server, error) {
	root, err := l.freshDir("refproxy-root")
	if err != nil {
		return nil, err
	}
	s, err := l.startRegistry(ctx, "refproxy", root, upstream)
	if err != nil {
		return nil, err
	}
	s.data = root
	return s, nil
}

// nginxBlobRoute is the URL prefix under which nginx serves blobDir: the
// same path shape a registry uses.
const nginxBlobRoute = "/v2/library/nginx/blobs/"

// startNginx serves the files of blobDir with sendfile, one worker per core,
// keeping everything it writes under its own directory.
func (l *launcher) startNginx(ctx context.Context, blobDir string) (*server, error) {
	prefix, err := l.freshDir("nginx")
	if err != nil {
		return nil, err
	}
	argv := func(port int) ([]string, error) {
		conf := filepath.Join(prefix, "nginx.conf")
		if err := os.WriteFile(conf, []byte(nginxConf(prefix, blobDir, port)), 0o644); err != nil {
			return nil, fmt.Errorf("write config: %w", err)
		}
		return []string{l.tools.nginx, "-p", prefix, "-c", conf, "-e", filepath.Join(prefix, "error.log")}, nil
	}
	return l.start(ctx, "nginx", nil, argv, "/")
}

func nginxConf(prefix, blobDir string, port int) string {
	return fmt.Sprintf(`daemon off;
user root;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log %[1]s/access.log;
  client_body_temp_path %[1]s/client_body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types { }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:%[2]d;
    location %[3]s { alias %[4]s/; }
  }
}
`, prefix, port, nginxBlobRoute, blobDir)
}
