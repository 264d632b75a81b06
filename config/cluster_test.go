package config

import (
	"strings"
	"testing"
)

func TestClusterKeysFromFileEnvAndFlags(t *testing.T) {
	file := "cluster:\n  self: http://A:5000\n  peers: [http://a:5000, http://b:5000]\n  secret_file: /s\n"
	c, err := load(t, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid cluster refused: %v", err)
	}
	c, err = load(t, "", map[string]string{"PULLCACHE_CLUSTER_PEERS": "http://a:1, http://b:2", "PULLCACHE_CLUSTER_SECRET_FILE": "/s"},
		"--cluster-self", "http://b:2")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Cluster.Peers) != 2 || c.Cluster.Peers[1] != "http://b:2" {
		t.Errorf("peers from env: %q", c.Cluster.Peers)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("valid cluster from env and flags refused: %v", err)
	}
}

func TestClusterValidationNamesTheKey(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"cluster:\n  self: http://c:5000\n  peers: [http://a:5000]\n  secret_file: /s\n", "cluster.self http://c:5000: not among cluster.peers"},
		{"cluster:\n  peers: [http://a:5000]\n  secret_file: /s\n", "cluster.self: required"},
		{"cluster:\n  self: http://a:5000\n  peers: [http://a:5000]\n", "cluster.secret_file: required"},
		{"cluster:\n  self: http://a:5000\n  secret_file: /s\n", "cluster.peers or cluster.peers_dns"},
		{"cluster:\n  self: ftp://a\n  peers: [ftp://a]\n  secret_file: /s\n", "cluster.self: \"ftp://a\""},
		{"cluster:\n  self: http://a:1\n  peers: [http://a:1]\n  peers_dns: x\n  secret_file: /s\n", "give one, not both"},
	} {
		c, err := load(t, tc.file, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.file, err, tc.want)
		}
	}
}

func TestMemberURLMakesThePortExplicit(t *testing.T) {
	got, err := MemberURL("HTTP://Node-1.example")
	if err != nil {
		t.Fatal(err)
	}
	if got != "http://node-1.example:80" {
		t.Errorf("got %q", got)
	}
}
