package check

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// valueSets are the values the chart is linted and rendered with, and
// what each must render.
var valueSets = []struct {
	name   string
	values string
	check  func(t *testing.T, objs objects)
}{
	{"defaults", "", checkDefaults},
	{"tls, logins, admin token, registry credentials, ServiceMonitor", `
tls: {secretName: mirror-tls}
htpasswd: {secretName: mirror-users, key: users}
adminToken: {secretName: mirror-admin, key: token}
registries:
  docker.io: {}
  ghcr.io:
    username: ci-bot
    passwordSecret: {name: ghcr-token, key: token}
  quay.io:
    endpoints: ["https://quay.io"]
    max_concurrency: 8
maxSize: 50GiB
shutdownGraceSeconds: 20
terminationGracePeriodSeconds: 30
resources:
  requests: {cpu: "1", memory: 256Mi}
  limits: {memory: 1Gi}
serviceMonitor:
  enabled: true
  interval: 15s
  scrapeTimeout: 5s
  labels: {release: prometheus}
config:
  tag_ttl: 10m
  access:
    - {users: ["*"], registries: ["docker.io", "ghcr.io"]}
`, checkSecrets},
	{"no persistence", "persistence: {enabled: false}\n", func(t *testing.T, objs objects) {
		if v := volume(objs, "data"); v == nil || v.EmptyDir == nil {
			t.Errorf("data volume %+v, want an emptyDir", v)
		}
		if n := len(objs.statefulSet.Spec.VolumeClaimTemplates); n != 0 {
			t.Errorf("%d volume claim templates without persistence", n)
		}
	}},
	{"existing claim, NodePort, storage class", `
persistence: {existingClaim: mirror-cache, storageClass: fast}
service: {type: NodePort, nodePort: 30500}
`, func(t *testing.T, objs objects) {
		if v := volume(objs, "data"); v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "mirror-cache" {
			t.Errorf("data volume %+v, want the claim mirror-cache", v)
		}
		if n := len(objs.statefulSet.Spec.VolumeClaimTemplates); n != 0 {
			t.Errorf("%d volume claim templates besides the existing claim", n)
		}
		if objs.service.Spec.Type != corev1.ServiceTypeNodePort || objs.service.Spec.Ports[0].NodePort != 30500 {
			t.Errorf("service %s, node port %d", objs.service.Spec.Type, objs.service.Spec.Ports[0].NodePort)
		}
	}},
	{"storage class and size of the claim template", "persistence: {storageClass: fast, size: 20Gi}\nreplicaCount: 2\n", func(t *testing.T, objs objects) {
		vct := objs.statefulSet.Spec.VolumeClaimTemplates
		if len(vct) != 1 {
			t.Fatalf("%d volume claim templates, want 1", len(vct))
		}
		if sc := vct[0].Spec.StorageClassName; sc == nil || *sc != "fast" {
			t.Errorf("storage class %v, want fast", sc)
		}
		if got := vct[0].Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("20Gi")) != 0 {
			t.Errorf("storage %s, want 20Gi", got.String())
		}
		if r := objs.statefulSet.Spec.Replicas; r == nil || *r != 2 {
			t.Errorf("replicas %v, want 2", r)
		}
	}},
}

// TestChartRendersValidObjects: for every value set, helm lint passes,
// helm template's objects decode strictly into the Kubernetes types, the
// rendered configuration is one pullcache accepts, and the set's own
// checks hold; then the checks every set shares.
func TestChartRendersValidObjects(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			f := valuesFile(t, vs.values)
			if out, err := helm(t, "lint", "--strict", chart, "-f", f); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			out, err := helm(t, "template", "mirror", chart, "--namespace", "registry", "-f", f)
			if err != nil {
				t.Fatal(err)
			}
			objs := decode(t, out)
			if code, msg := configCheck(t, objs); code != 0 {
				t.Errorf("pullcache config check of the rendered file: exit %d: %s", code, msg)
			}
			checkCommon(t, objs)
			vs.check(t, objs)
		})
	}
}

// checkCommon holds for every value set: probes on /healthz and /readyz,
// the grace above shutdown_grace, the Service reaching the pods.
func checkCommon(t *testing.T, objs objects) {
	t.Helper()
	c := container(t, objs)
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "http" {
		t.Errorf("liveness probe %+v, want GET /healthz on port http", p)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "http" {
		t.Errorf("readiness probe %+v, want GET /readyz on port http", p)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 5000 {
		t.Errorf("container ports %+v, want http 5000", c.Ports)
	}
	cfg := renderedConfig(t, objs)
	if cfg["listen"] != ":5000" || cfg["data"] != "/data" {
		t.Errorf("config listen %v data %v, want :5000 and /data", cfg["listen"], cfg["data"])
	}
	grace, err := time.ParseDuration(cfg["shutdown_grace"].(string))
	if err != nil {
		t.Fatalf("shutdown_grace %v: %v", cfg["shutdown_grace"], err)
	}
	tgps := objs.statefulSet.Spec.Template.Spec.TerminationGracePeriodSeconds
	if tgps == nil || time.Duration(*tgps)*time.Second <= grace {
		t.Errorf("terminationGracePeriodSeconds %v not above shutdown_grace %s", tgps, grace)
	}
	if !mountedAt(c, "data", "/data") {
		t.Errorf("no data volume at /data: %+v", c.VolumeMounts)
	}
	if objs.service.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("service target port %s, want http", objs.service.Spec.Ports[0].TargetPort.String())
	}
	for k, v := range objs.service.Spec.Selector {
		if objs.statefulSet.Spec.Template.Labels[k] != v {
			t.Errorf("service selects %s=%s, which the pods do not carry", k, v)
		}
	}
	if got := c.Args; strings.Join(got, " ") != "serve --config /etc/pullcache/pullcache.yml" {
		t.Errorf("args %q", got)
	}
	if !mountedAt(c, "config", "/etc/pullcache/pullcache.yml") {
		t.Errorf("configuration not mounted: %+v", c.VolumeMounts)
	}
}

func mountedAt(c corev1.Container, volume, path string) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == volume && m.MountPath == path {
			return true
		}
	}
	return false
}

func checkDefaults(t *testing.T, objs objects) {
	if objs.serviceMonitor != nil {
		t.Error("a ServiceMonitor by default")
	}
	vct := objs.statefulSet.Spec.VolumeClaimTemplates
	if len(vct) != 1 || vct[0].Name != "data" {
		t.Fatalf("volume claim templates %+v, want one called data", vct)
	}
	if got := vct[0].Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("100Gi")) != 0 {
		t.Errorf("storage %s, want 100Gi", got.String())
	}
	c := container(t, objs)
	if c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTP {
		t.Errorf("readiness scheme %s, want HTTP", c.ReadinessProbe.HTTPGet.Scheme)
	}
	if len(c.Env) != 0 {
		t.Errorf("env %+v, want none", c.Env)
	}
	cfg := renderedConfig(t, objs)
	if cfg["max_size"] != "90%" {
		t.Errorf("max_size %v, want 90%%", cfg["max_size"])
	}
	if _, ok := cfg["tls"]; ok {
		t.Error("tls configured by default")
	}
}

func checkSecrets(t *testing.T, objs objects) {
	c := container(t, objs)
	cfg := renderedConfig(t, objs)
	ghcr := cfg["registries"].(map[string]any)["ghcr.io"].(map[string]any)
	envName, _ := ghcr["password_env"].(string)
	if _, leaked := ghcr["passwordSecret"]; leaked {
		t.Error("passwordSecret passed into pullcache's configuration")
	}
	e := envVar(c, envName)
	if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		t.Fatalf("password_env %q is not a variable from a Secret: %+v", envName, c.Env)
	}
	if ref := e.ValueFrom.SecretKeyRef; ref.Name != "ghcr-token" || ref.Key != "token" {
		t.Errorf("ghcr.io password from %s/%s, want ghcr-token/token", ref.Name, ref.Key)
	}
	if e := envVar(c, "PULLCACHE_ADMIN_TOKEN"); e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Name != "mirror-admin" {
		t.Errorf("admin token not from the Secret mirror-admin: %+v", e)
	}
	tls := cfg["tls"].(map[string]any)
	if tls["cert"] != "/etc/pullcache/tls/tls.crt" || tls["key"] != "/etc/pullcache/tls/tls.key" {
		t.Errorf("tls %v", tls)
	}
	if v := volume(objs, "tls"); v == nil || v.Secret == nil || v.Secret.SecretName != "mirror-tls" || !mountedAt(c, "tls", "/etc/pullcache/tls") {
		t.Errorf("TLS Secret not mounted at /etc/pullcache/tls: %+v", v)
	}
	if got := cfg["auth"].(map[string]any)["htpasswd"]; got != "/etc/pullcache/auth/htpasswd" {
		t.Errorf("auth.htpasswd %v", got)
	}
	v := volume(objs, "htpasswd")
	if v == nil || v.Secret == nil || v.Secret.SecretName != "mirror-users" || len(v.Secret.Items) != 1 ||
		v.Secret.Items[0].Key != "users" || v.Secret.Items[0].Path != "htpasswd" || !mountedAt(c, "htpasswd", "/etc/pullcache/auth") {
		t.Errorf("htpasswd Secret's key users not mounted as /etc/pullcache/auth/htpasswd: %+v", v)
	}
	if c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS || c.LivenessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Error("probes not over HTTPS with TLS on")
	}
	if cfg["max_size"] != "50GiB" || cfg["shutdown_grace"] != "20s" || cfg["tag_ttl"] != "10m" {
		t.Errorf("max_size %v shutdown_grace %v tag_ttl %v", cfg["max_size"], cfg["shutdown_grace"], cfg["tag_ttl"])
	}
	if got := c.Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("1Gi")) != 0 {
		t.Errorf("memory limit %s", got.String())
	}
	checkServiceMonitor(t, objs)
}

// checkServiceMonitor checks the ServiceMonitor field by field: no schema
// of the Prometheus Operator's can be fetched here.
func checkServiceMonitor(t *testing.T, objs objects) {
	sm := objs.serviceMonitor
	if sm == nil {
		t.Fatal("no ServiceMonitor with serviceMonitor.enabled")
	}
	if sm.Metadata.Name != objs.service.Name {
		t.Errorf("ServiceMonitor name %q, want the Service's %q", sm.Metadata.Name, objs.service.Name)
	}
	if sm.Metadata.Labels["release"] != "prometheus" {
		t.Errorf("ServiceMonitor labels %v lack release=prometheus", sm.Metadata.Labels)
	}
	if len(sm.Spec.Selector.MatchLabels) == 0 || len(sm.Spec.Selector.MatchExpressions) != 0 {
		t.Errorf("selector %+v, want match labels only", sm.Spec.Selector)
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if objs.service.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, which the Service does not carry", k, v)
		}
	}
	if got := sm.Spec.NamespaceSelector.MatchNames; len(got) != 1 || got[0] != "registry" {
		t.Errorf("namespace selector %v, want [registry]", got)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("%d endpoints, want 1", len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != objs.service.Spec.Ports[0].Name {
		t.Errorf("endpoint port %q, want the Service's port name %q", ep.Port, objs.service.Spec.Ports[0].Name)
	}
	if ep.Path != "/metrics" {
		t.Errorf("path %q", ep.Path)
	}
	if ep.Scheme != "https" {
		t.Errorf("scheme %q, want https with TLS on", ep.Scheme)
	}
	interval, err1 := time.ParseDuration(ep.Interval)
	timeout, err2 := time.ParseDuration(ep.ScrapeTimeout)
	if err1 != nil || err2 != nil || interval != 15*time.Second || timeout != 5*time.Second {
		t.Errorf("interval %q timeout %q, want 15s and 5s", ep.Interval, ep.ScrapeTimeout)
	}
	if timeout > interval {
		t.Errorf("scrape timeout %s above the interval %s", timeout, interval)
	}
}

// TestChartRefusesWhatCannotWork: values that would kill a draining pod or
// share one volume between replicas fail to render, with the reason.
func TestChartRefusesWhatCannotWork(t *testing.T) {
	tests := []struct{ name, values, want string }{
		{"grace not above shutdown_grace", "shutdownGraceSeconds: 10\nterminationGracePeriodSeconds: 10\n",
			"terminationGracePeriodSeconds must be above shutdownGraceSeconds"},
		{"one claim for two replicas", "persistence: {existingClaim: c}\nreplicaCount: 2\n", "persistence.existingClaim is one volume"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helm(t, "template", "mirror", chart, "-f", valuesFile(t, tc.values))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestRenderedConfigMistakesAreCaught: a mistake in the values' config
// renders (helm does not know pullcache's keys), and pullcache config
// check refuses the file, naming the key.
func TestRenderedConfigMistakesAreCaught(t *testing.T) {
	tests := []struct{ name, values, want string }{
		{"unknown key", "config: {tag_ttll: 5m}\n", `unknown key "tag_ttll"`},
		{"bad value", "config: {log: {level: loud}}\n", `log.level "loud"`},
		{"default registry not configured", "config: {default_registry: quay.io}\n", `default_registry "quay.io"`},
		{"password secret without a username", "registries:\n  docker.io: {passwordSecret: {name: hub}}\n", "registries.docker.io: a password needs a username"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, "template", "mirror", chart, "-f", valuesFile(t, tc.values))
			if err != nil {
				t.Fatal(err)
			}
			code, msg := configCheck(t, decode(t, out))
			if code != 1 {
				t.Errorf("pullcache config check: exit %d, want 1: %s", code, msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("pullcache config check said %q, want it to name %q", msg, tc.want)
			}
		})
	}
}
