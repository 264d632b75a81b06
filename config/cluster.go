package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// Cluster makes this server one member of several that act as one mirror
// (peers only: no shared storage yet). Default: not a cluster.
type Cluster struct {
	// Self is this member's URL as the other members reach it
	// (scheme://host:port); it must be among the members. Default none.
	Self string `yaml:"self"`
	// Peers are the members' URLs, Self included. Re-read on SIGHUP.
	// Default none.
	Peers []string `yaml:"peers"`
	// PeersDNS is a name re-resolved every few seconds to the members: a
	// Kubernetes headless Service (A/AAAA records, with Self's scheme and
	// port) or an SRV name starting with "_". Default none.
	PeersDNS string `yaml:"peers_dns"`
	// SecretFile holds the secret every member shares; peer requests carry
	// it and pass no client login. At least 16 characters. Default none.
	SecretFile string `yaml:"secret_file"`
}

// Enabled reports whether the members are named. The secret file alone
// is not a cluster: `pullcache cluster` reads it to ask one.
func (c Cluster) Enabled() bool {
	return c.Self != "" || len(c.Peers) > 0 || c.PeersDNS != ""
}

// MemberURL puts a member's URL in the form members are known by:
// scheme://host:port, lower-case, the default port explicit.
func MemberURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "", fmt.Errorf("%q: want http://HOST:PORT or https://HOST:PORT", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("%q: a member is scheme://host:port, without path, query or user", raw)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port), nil
}

func (c Cluster) validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	self, err := MemberURL(c.Self)
	if c.Self == "" {
		errs = append(errs, errors.New("cluster.self: required in a cluster (this member's URL as the others reach it)"))
	} else if err != nil {
		errs = append(errs, fmt.Errorf("cluster.self: %w", err))
	}
	if c.SecretFile == "" {
		errs = append(errs, errors.New("cluster.secret_file: required in a cluster"))
	}
	switch {
	case len(c.Peers) == 0 && c.PeersDNS == "":
		errs = append(errs, errors.New("cluster.peers or cluster.peers_dns: name the members"))
	case len(c.Peers) > 0 && c.PeersDNS != "":
		errs = append(errs, errors.New("cluster.peers and cluster.peers_dns: give one, not both"))
	}
	var members []string
	for _, p := range c.Peers {
		m, err := MemberURL(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster.peers: %w", err))
			continue
		}
		members = append(members, m)
	}
	if len(c.Peers) > 0 && err == nil && c.Self != "" && !slices.Contains(members, self) {
		errs = append(errs, fmt.Errorf("cluster.self %s: not among cluster.peers %v", self, members))
	}
	return errors.Join(errs...)
}

// splitList parses a comma-separated list, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
