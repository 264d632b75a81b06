// Command pullcache is a pull-through caching mirror for container
// registries. This file is wiring only: subcommands, configuration, and
// the lifecycle of the server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the mirror (registry API on --listen, data in --data)", runServe},
		{"import", "load docker save tarballs, oci-archives and OCI layouts into the cache", runImport},
		{"export", "write cached images to an OCI-layout tar (-o FILE IMAGE... | --all)", runExport},
		{"warm", "pull images into the cache through the mirror (IMAGE... | -f LIST)", runWarm},
		{"ls", "list cached images: size, unique size, last pulled, pinned ([PATTERN] [--json])", runLs},
		{"rm", "remove images from the cache (IMAGE...)", runRm},
		{"gc", "evict down to the bound and sweep orphaned files now ([--dry-run])", runGC},
		{"verify", "hash every blob and check the index; exit 1 if anything is wrong ([--repair])", runVerify},
		{"df", "show the bound and what the cache uses", runDf},
		{"pin", "keep images from eviction (IMAGE... or patterns)", runPin},
		{"unpin", "let pinned images be evicted again (IMAGE...)", runUnpin},
		{"history", "show the digests a tag pointed to (IMAGE[:TAG])", runHistory},
		{"cluster", "show the cluster's members, health, ownership share and fills in flight", runCluster},
		{"config", "validate a configuration file: exit 1 naming each key serve would refuse (check FILE)", runConfig},
		{"health", "check a running server's /healthz: exit 0 when healthy, 1 when not", runHealth},
		{"version", "print the version", runVersion},
		{"help", "list the subcommands", nil},
	}
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] && c.run != nil {
			err := c.run(ctx, args[1:], stdout, stderr)
			return exitCode(err, stderr)
		}
	}
	fmt.Fprintf(stderr, "pullcache: unknown command %q; run 'pullcache help' for the list\n", args[0])
	return 2
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	// One line: the message, with newlines of joined errors folded.
	fmt.Fprintf(stderr, "pullcache: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "pullcache: a pull-through caching mirror for container registries")
	fmt.Fprintln(w, "\nUsage: pullcache <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'pullcache <command> -h' for a command's flags.")
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	fmt.Fprintf(stdout, "pullcache %s\n", versionString())
	return nil
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// newFlagSet returns a flag set whose parse errors are usage errors.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pullcache "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args; a mistake is one line (the caller prints it),
// -h prints the flags.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(out, "Usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		return err
	}
	if err != nil {
		return usageError{err.Error() + " (see -h)"}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}
