// Package check tests the Helm chart in ../pullcache: helm lint and helm
// template for several value sets, every rendered object decoded strictly
// into the Kubernetes API types (an unknown field is an error), the
// optional ServiceMonitor checked field by field, and the rendered
// configuration file loaded by pullcache itself (pullcache config check).
//
// It is a module of its own so that k8s.io/api stays out of pullcache's
// go.mod; scripts/test.sh runs it as a step of its own.
package check
