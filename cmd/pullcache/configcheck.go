package main

import (
	"context"
	"fmt"
	"io"

	"github.com/pullcache/pullcache/config"
)

// runConfig is `pullcache config check FILE`: it loads FILE as serve
// would (defaults, then the file; unknown keys refused) and validates it,
// without touching the data directory or the network. Deployment tooling
// (the Helm chart's tests) runs it on the file it renders.
func runConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "Usage: pullcache config check FILE\n\nLoad and validate a configuration file: exit 0 when serve would accept it, 1 naming each key it would refuse.")
		if len(args) == 0 {
			return usageError{"config: want a subcommand: check FILE"}
		}
		return nil
	}
	if args[0] != "check" {
		return usageError{fmt.Sprintf("config: unknown subcommand %q (want check FILE)", args[0])}
	}
	if len(args) != 2 {
		return usageError{"config check: want exactly one FILE"}
	}
	return checkConfigFile(args[1], stdout)
}

func checkConfigFile(path string, stdout io.Writer) error {
	cfg, err := config.LoadFile(path)
	if err != nil {
		return fmt.Errorf("config check: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config check: %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "ok: %s\n", path)
	return nil
}
