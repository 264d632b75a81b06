package console

import (
	"net/http"
	"strings"

	"github.com/pullcache/pullcache/admin"
)

// pullCommand is a command that pulls the image through this mirror.
type pullCommand struct {
	Client, Command string
}

// pullCommands are copy-paste pulls for docker, podman, containerd and
// crane, through the host the browser reached the console on (the
// registry API shares the listener). A registry other than the default is
// named by path prefix, which every client can send.
func pullCommands(r *http.Request, info admin.ImageDetail, defaultRegistry string) []pullCommand {
	ref := r.Host + "/"
	if info.Registry != defaultRegistry {
		ref += info.Registry + "/"
	}
	ref += info.Repository
	if info.Tag != "" {
		ref += ":" + info.Tag
	} else {
		ref += "@" + info.Digest
	}
	plain := r.TLS == nil
	flag := func(f string) string {
		if plain {
			return " " + f
		}
		return ""
	}
	out := []pullCommand{
		{"docker", "docker pull " + ref},
		{"podman", "podman pull" + flag("--tls-verify=false") + " " + ref},
		{"containerd", "ctr images pull" + flag("--plain-http") + " " + ref},
		{"crane", "crane pull" + flag("--insecure") + " " + ref + " " + tarName(info) + ".tar"},
	}
	if plain {
		out[0].Command += "   # the mirror must be in the daemon's insecure-registries"
	}
	return out
}

// tarName is a file name for crane's output.
func tarName(info admin.ImageDetail) string {
	parts := strings.Split(info.Repository, "/")
	name := parts[len(parts)-1]
	if info.Tag != "" {
		return name + "-" + info.Tag
	}
	return name
}
