package upstream

import "testing"

func TestProxyAddrs(t *testing.T) {
	env := map[string]string{"HTTPS_PROXY": "http://10.0.0.1:3128", "http_proxy": "proxy.corp"}
	got := proxyAddrs(func(k string) string { return env[k] })
	for _, want := range []string{"10.0.0.1:3128", "proxy.corp:80"} {
		if !got[want] {
			t.Errorf("%s missing from %v", want, got)
		}
	}
	if len(got) != 2 {
		t.Errorf("got %v", got)
	}
}
