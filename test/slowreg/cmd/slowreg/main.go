// Command slowreg serves slowreg's throttled, counting registry: the
// upstream of the cluster's end-to-end tests, run in a container built
// FROM scratch. It pushes its blobs itself: POST /blobs?size=N creates a
// random blob of N bytes in repository test/blob and answers its digest.
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullcache/pullcache/test/slowreg"
)

func main() {
	listen := flag.String("listen", ":5000", "address to listen on")
	rateBps := flag.Int("rate", 0, "shared uplink rate for blob bytes, bytes per second (0: unthrottled)")
	flag.Parse()
	reg := slowreg.New(*rateBps)
	mux := http.NewServeMux()
	mux.Handle("/", reg)
	mux.HandleFunc("POST /blobs", func(w http.ResponseWriter, r *http.Request) {
		d, err := pushRandom(*listen, r.URL.Query().Get("size"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reg.Reset()
		fmt.Fprintln(w, d)
	})
	log.Fatal(http.ListenAndServe(*listen, mux))
}

// pushRandom pushes a random blob through the registry's own API, on
// loopback, without the throttle's counts (they are reset after).
func pushRandom(listen, size string) (string, error) {
	n, err := strconv.Atoi(size)
	if err != nil || n <= 0 || n > 1<<30 {
		return "", fmt.Errorf("size %q: want 1 to 1073741824 bytes", size)
	}
	b := make([]byte, n)
	_, _ = rand.Read(b)
	layer := static.NewLayer(b, types.DockerLayer)
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	repo, err := name.NewRepository(net.JoinHostPort("127.0.0.1", port)+"/test/blob", name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.WriteLayer(repo, layer); err != nil {
		return "", err
	}
	d, err := layer.Digest()
	return d.String(), err
}
