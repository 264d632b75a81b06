package cluster

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

type fakeResolver struct {
	hosts []string
	srvs  []*net.SRV
	err   error
}

func (f *fakeResolver) LookupHost(context.Context, string) ([]string, error) { return f.hosts, f.err }
func (f *fakeResolver) LookupSRV(context.Context, string, string, string) (string, []*net.SRV, error) {
	return "", f.srvs, f.err
}

func TestPeersFromDNS(t *testing.T) {
	res := &fakeResolver{hosts: []string{"10.0.0.1", "10.0.0.2", "fd00::3"}}
	n, err := New(Options{Self: "http://10.0.0.1:5000", PeersDNS: "pullcache-members", Resolver: res, Secret: []byte("0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	n.resolve(context.Background())
	if got := strings.Join(n.Members(), " "); got != "http://10.0.0.1:5000 http://10.0.0.2:5000 http://[fd00::3]:5000" {
		t.Errorf("members from A/AAAA records: %s", got)
	}
	// A failed lookup keeps the members; a new answer replaces them.
	res.err = errors.New("SERVFAIL")
	n.resolve(context.Background())
	if len(n.Members()) != 3 {
		t.Errorf("a failed lookup changed the members: %v", n.Members())
	}
	res.err, res.hosts = nil, []string{"10.0.0.1"}
	n.resolve(context.Background())
	if got := strings.Join(n.Members(), " "); got != "http://10.0.0.1:5000" {
		t.Errorf("members after a member left: %s", got)
	}
}

func TestPeersFromSRV(t *testing.T) {
	res := &fakeResolver{srvs: []*net.SRV{{Target: "pc-0.members.", Port: 5000}, {Target: "pc-1.members.", Port: 5001}}}
	n, err := New(Options{Self: "http://pc-0.members:5000", PeersDNS: "_http._tcp.members", Resolver: res, Secret: []byte("0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	n.resolve(context.Background())
	if got := strings.Join(n.Members(), " "); got != "http://pc-0.members:5000 http://pc-1.members:5001" {
		t.Errorf("members from SRV records: %s", got)
	}
}
