package config

import (
	"strings"
	"testing"
)

func TestStorageS3KeysFromFileEnvAndFlags(t *testing.T) {
	file := "storage:\n  s3:\n    endpoint: http://minio:9000\n    bucket: cache\n    prefix: eu/\n    path_style: true\n"
	c, err := load(t, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid storage refused: %v", err)
	}
	if s := c.Storage.S3; !s.PathStyle || s.Bucket != "cache" || s.Prefix != "eu/" || s.Endpoint != "http://minio:9000" {
		t.Errorf("from the file: %+v", s)
	}
	c, err = load(t, file, map[string]string{"PULLCACHE_S3_BUCKET": "other", "PULLCACHE_S3_REGION": "eu-west-1"},
		"--s3-path-style=false", "--s3-endpoint", "https://s3.example")
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Storage.S3; s.PathStyle || s.Bucket != "other" || s.Region != "eu-west-1" || s.Endpoint != "https://s3.example" {
		t.Errorf("env and flags over the file: %+v", s)
	}
}

func TestStorageS3ValidationNamesTheKey(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"storage:\n  s3:\n    endpoint: http://minio:9000\n", "storage.s3.bucket: required"},
		{"storage:\n  s3:\n    bucket: b\n    endpoint: minio:9000\n", "storage.s3.endpoint \"minio:9000\""},
		{"storage:\n  s3:\n    bucket: b\n    prefix: /x\n", "storage.s3.prefix \"/x\""},
		{"storage:\n  s3:\n    bucket: b\n    ca_file: /nonexistent/ca.pem\n", "storage.s3.ca_file: "},
		{"storage:\n  s3:\n    bucket: b\n    credentials_file: /nonexistent/c\n", "storage.s3.credentials_file: "},
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
