package config

import (
	"strings"
	"testing"
)

func TestAdminTokenComesFromEnvOrFileNotFlags(t *testing.T) {
	c, err := load(t, "", map[string]string{"PULLCACHE_ADMIN_TOKEN": "0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminToken != "0123456789abcdef" {
		t.Errorf("admin token from env: %q", c.AdminToken)
	}
	c, err = load(t, "admin_token: fedcba9876543210\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminToken != "fedcba9876543210" {
		t.Errorf("admin token from file: %q", c.AdminToken)
	}
	if _, err := load(t, "", nil, "--admin-token", "x"); err == nil {
		t.Error("--admin-token accepted: a token on the command line shows in ps")
	}
}

func TestUploadLimit(t *testing.T) {
	c, err := load(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.UploadLimit != 10<<30 {
		t.Errorf("default upload limit %d", c.UploadLimit)
	}
	c, err = load(t, "", map[string]string{"PULLCACHE_UPLOAD_LIMIT": "1048576"})
	if err != nil {
		t.Fatal(err)
	}
	if c.UploadLimit != 1<<20 {
		t.Errorf("upload limit from env %d", c.UploadLimit)
	}
	if _, err := load(t, "", nil, "--upload-limit", "lots"); err == nil || !strings.Contains(err.Error(), "upload-limit") {
		t.Errorf("bad --upload-limit: %v", err)
	}
}

func TestValidateAdminSettings(t *testing.T) {
	c := Default()
	c.AdminToken = "short"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "admin_token") {
		t.Errorf("short token: %v", err)
	}
	c = Default()
	c.UploadLimit = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "upload_limit") {
		t.Errorf("zero upload limit: %v", err)
	}
}
