package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestComposeCluster runs deploy/compose/docker-compose.yml as it is, with
// docker-compose v1, on the image the cluster tests build (--no-build:
// the engine here can pull no base image to build the Dockerfile with),
// plus an override file that adds the test's upstream: three members
// answer on their published ports, a blob pulled through all of them costs
// one upstream GET, and `pullcache cluster` inside a member sees three
// members up.
func TestComposeCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	d := requireDockerCLI(t)
	requireTools(t, "crane", "docker-compose")
	image := clusterImage(ctx, t, d)
	suffix := strings.ToLower(rand.Text()[:8])
	tag := "pullcache-e2e-compose:" + suffix
	d.run(ctx, "tag", image, tag)
	d.cleanup("image tag", "rmi", tag)
	dir := t.TempDir()
	ports := freePorts(t, 4)
	writeComposeFiles(t, dir)
	compose := composeCLI{t: t, dir: dir, project: "pcc" + suffix, env: []string{
		"PULLCACHE_IMAGE=" + tag, "UPSTREAM_PORT=" + ports[3],
		"PULLCACHE_PORT_1=" + ports[0], "PULLCACHE_PORT_2=" + ports[1], "PULLCACHE_PORT_3=" + ports[2]}}
	t.Cleanup(compose.down)
	compose.run(ctx, "up", "-d", "--no-build")
	for _, p := range ports[:3] {
		waitHTTP(ctx, t, "http://127.0.0.1:"+p+"/healthz")
	}
	waitHTTP(ctx, t, "http://127.0.0.1:"+ports[3]+"/stats")
	digest := pushBlobAt(t, "127.0.0.1:"+ports[3], 8<<20)
	res := make(chan error, 6)
	for i := range 6 {
		go func() {
			got, err := craneBlob(ctx, "127.0.0.1:"+ports[i%3], digest)
			if err == nil && got != digest {
				err = fmt.Errorf("got %s", got)
			}
			res <- err
		}()
	}
	for range 6 {
		if err := <-res; err != nil {
			t.Error(err)
		}
	}
	if st := statsAt(t, "127.0.0.1:"+ports[3]); st.BlobGETs != 1 {
		t.Errorf("%d upstream GETs for a blob pulled through three members, want 1", st.BlobGETs)
	}
	out := compose.run(ctx, "exec", "-T", "pullcache-1", "/pullcache", "cluster")
	t.Logf("pullcache cluster in pullcache-1:\n%s", out)
	if n := strings.Count(out, " up "); n != 3 {
		t.Errorf("pullcache cluster in a member shows %d members up, want 3:\n%s", n, out)
	}
}

// writeComposeFiles writes what the compose file reads from its project
// directory (the secret) and the test's override: an upstream service,
// and the members pointed at it.
func writeComposeFiles(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"cluster-secret": "compose-e2e-secret-0123456789\n",
		"upstream.yml":   "registries:\n  docker.io:\n    endpoints: [\"http://upstream:5000\"]\n    lan: true\n",
		"override.yml":   composeOverride(),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func composeOverride() string {
	var b strings.Builder
	b.WriteString("version: \"2.4\"\nservices:\n  upstream:\n    image: ${PULLCACHE_IMAGE}\n")
	b.WriteString("    command: [\"/slowreg\", \"-listen\", \":5000\"]\n    ports: [\"127.0.0.1:${UPSTREAM_PORT}:5000\"]\n")
	for i := 1; i <= 3; i++ {
		// The test image is FROM scratch with no ENTRYPOINT: the whole
		// command is given.
		fmt.Fprintf(&b, "  pullcache-%d:\n    command: [\"/pullcache\", \"serve\"]\n    depends_on: [upstream]\n", i)
		b.WriteString("    environment: {PULLCACHE_CONFIG: /etc/pullcache/upstream.yml}\n")
		b.WriteString("    volumes: [\"./upstream.yml:/etc/pullcache/upstream.yml:ro\"]\n")
	}
	return b.String()
}

type composeCLI struct {
	t            *testing.T
	dir, project string
	env          []string
}

func (c composeCLI) args(more ...string) []string {
	return append([]string{"-p", c.project, "--project-directory", c.dir,
		"-f", filepath.Join(moduleRoot(c.t), "deploy", "compose", "docker-compose.yml"),
		"-f", filepath.Join(c.dir, "override.yml")}, more...)
}

func (c composeCLI) run(ctx context.Context, args ...string) string {
	c.t.Helper()
	return run(ctx, c.t, c.env, "docker-compose", c.args(args...)...)
}

// down removes the project's containers, network and volumes, then
// anything left with its label, by ID.
func (c composeCLI) down() {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if _, out, err := runErr(ctx, c.t, c.env, "docker-compose", c.args("down", "-v", "--timeout", "5")...); err != nil {
		c.t.Errorf("docker-compose down: %v\n%s", err, out)
	}
	label := "label=com.docker.compose.project=" + c.project
	for _, kind := range [][]string{{"ps", "-aq"}, {"volume", "ls", "-q"}, {"network", "ls", "-q"}} {
		out, _, _ := runErr(ctx, c.t, nil, "docker", append(kind, "--filter", label)...)
		for _, id := range strings.Fields(out) {
			c.t.Errorf("docker-compose down left %s %s", kind[0], id)
			rm := map[string][]string{"ps": {"rm", "-f", "-v"}, "volume": {"volume", "rm", "-f"}, "network": {"network", "rm"}}[kind[0]]
			_, _, _ = runErr(ctx, c.t, nil, "docker", append(rm, id)...)
		}
	}
}

// freePorts returns n ports free on 127.0.0.1 now.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, p, _ := net.SplitHostPort(ln.Addr().String())
		out = append(out, p)
		ln.Close()
	}
	return out
}
