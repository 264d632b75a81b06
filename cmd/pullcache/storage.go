package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullcache/pullcache/cache/blobs/s3"
	"github.com/pullcache/pullcache/cluster"
	"github.com/pullcache/pullcache/config"
	"github.com/pullcache/pullcache/proxy"
	"github.com/pullcache/pullcache/sharedstore"
)

// newSharedStore connects to the shared bucket, or returns nil when none
// is configured. Nothing is sent yet: a bucket that cannot be reached
// costs misses, not the server.
func newSharedStore(cfg config.S3, log *slog.Logger, reg prometheus.Registerer) (*sharedstore.Store, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	tier, err := s3.New(context.Background(), s3.Config{
		Endpoint: cfg.Endpoint, Bucket: cfg.Bucket, Region: cfg.Region, Prefix: cfg.Prefix,
		PathStyle: cfg.PathStyle, CAFile: cfg.CAFile, CredentialsFile: cfg.CredentialsFile, Metrics: reg,
	})
	if err != nil {
		return nil, err
	}
	return sharedstore.New(tier, log, reg)
}

// decorator layers a registry's client: the shared bucket's writer
// around the client itself (only the member that really fetches writes),
// the cluster's owner routing around that, and the bucket's reader
// outermost (a member reads the bucket before asking the owner). nil
// when there is nothing to layer.
func decorator(node *cluster.Node, shared *sharedstore.Store) func(string, proxy.Upstream) proxy.Upstream {
	if node == nil && shared == nil {
		return nil
	}
	return func(name string, up proxy.Upstream) proxy.Upstream {
		if shared != nil {
			up = shared.Writer(name, up)
		}
		if node != nil {
			up = node.Wrap(name, up)
		}
		if shared != nil {
			up = shared.Reader(name, up)
		}
		return up
	}
}
