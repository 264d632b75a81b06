package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// tools are the absolute paths of the programs the benchmark drives.
type tools struct {
	registry, crane, nginx, wrk, goCmd string
}

// moduleRoot walks up from the working directory to the directory holding
// go.mod, so that `go run ./bench` and `go test ./bench` both work.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// installDeps runs scripts/install-test-deps.sh --bench, which installs
// nginx, wrk, hyperfine, crane, regctl and the reference registry when they
// are missing. A checkout without the script carries on with what is there.
func installDeps(ctx context.Context, root string, progress io.Writer) error {
	script := filepath.Join(root, "scripts", "install-test-deps.sh")
	if _, err := os.Stat(script); err != nil {
		fmt.Fprintf(progress, "bench: %s not found; using the tools already installed\n", script)
		return nil
	}
	cmd := exec.CommandContext(ctx, "bash", script, "--bench")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = progress, progress
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("install-test-deps.sh --bench: %w", err)
	}
	return nil
}

// findTools looks each program up on PATH, then where `go install` and
// Debian put them (neither is on every PATH).
func findTools(ctx context.Context) (tools, error) {
	goCmd, err := lookTool("go", []string{"/usr/local/go/bin"})
	if err != nil {
		return tools{}, err
	}
	extra := []string{"/usr/sbin", "/sbin"}
	if out, err := exec.CommandContext(ctx, goCmd, "env", "GOBIN", "GOPATH").Output(); err == nil {
		f := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(f) == 2 && f[0] != "" {
			extra = append(extra, f[0])
		}
		if len(f) == 2 && f[1] != "" {
			extra = append(extra, filepath.Join(f[1], "bin"))
		}
	}
	t := tools{goCmd: goCmd}
	for _, x := range []struct {
		name string
		dst  *string
	}{{"registry", &t.registry}, {"crane", &t.crane}, {"nginx", &t.nginx}, {"wrk", &t.wrk}} {
		if *x.dst, err = lookTool(x.name, extra); err != nil {
			return tools{}, err
		}
	}
	return t, nil
}

func lookTool(name string, extraDirs []string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range extraDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH or in %v (run scripts/install-test-deps.sh --bench)", name, extraDirs)
}

// buildPullcache builds ./cmd/pullcache into dir.
func buildPullcache(ctx context.Context, t tools, root, dir string) (string, error) {
	bin := filepath.Join(dir, "pullcache")
	cmd := exec.CommandContext(ctx, t.goCmd, "build", "-o", bin, "./cmd/pullcache")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/pullcache: %w: %s", err, lastLines(string(out), 10))
	}
	return bin, nil
}

// machineInfo describes the machine the numbers come from.
func machineInfo(ctx context.Context, t tools) []string {
	info := []string{fmt.Sprintf("nproc: %d", runtime.NumCPU())}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				info = append(info, "CPU: "+strings.TrimSpace(strings.TrimLeft(name, " \t:")))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		info = append(info, "kernel: "+strings.TrimSpace(string(b)))
	}
	if out, err := exec.CommandContext(ctx, "free", "-h").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "Mem:") {
				if f := strings.Fields(line); len(f) >= 7 {
					info = append(info, fmt.Sprintf("memory (free -h): total %s, available %s", f[1], f[6]))
				}
			}
		}
	}
	if out, err := exec.CommandContext(ctx, t.goCmd, "version").Output(); err == nil {
		info = append(info, strings.TrimSpace(string(out)))
	}
	return info
}

// loadAverage returns the 1, 5 and 15 minute load averages, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
