package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const chart = "../pullcache"

// pullcacheBin is pullcache built from the module at the repository's root
// (TestMain), to check the configuration files the chart renders.
var pullcacheBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "helm-check-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bin := filepath.Join(dir, "pullcache")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pullcache")
		build.Dir = filepath.Join("..", "..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build ./cmd/pullcache: %v\n%s", err, out)
			return 1
		}
		pullcacheBin = bin
		return m.Run()
	}()
	os.Exit(code)
}

// helm runs helm with its configuration, cache and data in a directory of
// the test's, and returns its standard output; err carries its standard
// error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("helm")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		bin = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "helm")
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("helm not found on PATH nor in GOPATH/bin: run scripts/install-test-deps.sh")
		}
	}
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// valuesFile writes values (YAML) to a file of the test's. Its directory
// is not t.TempDir(), whose name holds the test's, commas included: helm's
// -f takes a comma-separated list.
func valuesFile(t *testing.T, values string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "helm-values-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(p, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// objects are the rendered chart, decoded.
type objects struct {
	configMap      *corev1.ConfigMap
	service        *corev1.Service
	statefulSet    *appsv1.StatefulSet
	serviceMonitor *serviceMonitor
}

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) the chart writes; decoding is strict, so a
// field the chart writes that is not here fails the test.
type serviceMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Scheme        string `json:"scheme"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// decode splits helm template's output into documents and decodes each,
// strictly, into the type of its kind; a kind the chart should not render
// fails the test.
func decode(t *testing.T, out string) objects {
	t.Helper()
	var objs objects
	for _, doc := range strings.Split(out, "\n---") {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("YAML: %v\n%s", err, doc)
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			t.Fatal(err)
		}
		var into any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 ConfigMap":
			objs.configMap = &corev1.ConfigMap{}
			into = objs.configMap
		case "v1 Service":
			objs.service = &corev1.Service{}
			into = objs.service
		case "apps/v1 StatefulSet":
			objs.statefulSet = &appsv1.StatefulSet{}
			into = objs.statefulSet
		case "monitoring.coreos.com/v1 ServiceMonitor":
			objs.serviceMonitor = &serviceMonitor{}
			into = objs.serviceMonitor
		default:
			t.Fatalf("unexpected object %s %s", tm.APIVersion, tm.Kind)
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			t.Fatalf("%s: %v\n%s", tm.Kind, err, doc)
		}
	}
	if objs.configMap == nil || objs.service == nil || objs.statefulSet == nil {
		t.Fatalf("the chart rendered no ConfigMap, Service or StatefulSet:\n%s", out)
	}
	return objs
}

func stripComments(doc string) string {
	var keep []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// configCheck runs pullcache config check on the rendered configuration
// file and returns its exit code and output.
func configCheck(t *testing.T, objs objects) (int, string) {
	t.Helper()
	body, ok := objs.configMap.Data["pullcache.yml"]
	if !ok {
		t.Fatalf("ConfigMap has no pullcache.yml: %v", objs.configMap.Data)
	}
	p := filepath.Join(t.TempDir(), "pullcache.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(pullcacheBin, "config", "check", p).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatal(err)
	return -1, ""
}

// renderedConfig is the rendered configuration file, parsed.
func renderedConfig(t *testing.T, objs objects) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(objs.configMap.Data["pullcache.yml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// container is the StatefulSet's one container.
func container(t *testing.T, objs objects) corev1.Container {
	t.Helper()
	cs := objs.statefulSet.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	return cs[0]
}

// volume is the pod's volume called name, or nil.
func volume(objs objects, name string) *corev1.Volume {
	for i, v := range objs.statefulSet.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &objs.statefulSet.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

// envVar is the container's variable called name, or nil.
func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i, e := range c.Env {
		if e.Name == name {
			return &c.Env[i]
		}
	}
	return nil
}
