package main

import (
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/pullcache/pullcache/config"
)

// upstreamCredentials picks what the mirror presents to an upstream
// registry: a username and password (or a password from the environment),
// docker's keychain (config.json and its credential helpers), or nothing
// (anonymous). A new kind of upstream credential goes here, with its keys
// in config.Registry.
func upstreamCredentials(regName string, rc config.Registry) (authn.Authenticator, error) {
	password := rc.Password
	if rc.PasswordEnv != "" {
		password = os.Getenv(rc.PasswordEnv)
		if password == "" {
			return nil, fmt.Errorf("registry %s: environment variable %s (password_env) is empty", regName, rc.PasswordEnv)
		}
	}
	switch {
	case rc.Username != "":
		return &authn.Basic{Username: rc.Username, Password: password}, nil
	case rc.Keychain:
		reg, err := name.NewRegistry(regName)
		if err != nil {
			return nil, fmt.Errorf("registry %s: %w", regName, err)
		}
		return authn.DefaultKeychain.Resolve(reg)
	}
	return authn.Anonymous, nil
}
