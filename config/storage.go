package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Storage is where blobs live besides the data directory. Default: the
// data directory only.
type Storage struct {
	// S3 is a bucket shared by the caches of a cluster (or any number of
	// caches): what one fetched from an upstream, the others serve.
	// Default: none.
	S3 S3 `yaml:"s3"`
}

// S3 names an S3-compatible bucket. Credentials come from
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, else CredentialsFile.
type S3 struct {
	// Endpoint is the server's URL, such as http://minio:9000. Default:
	// AWS's endpoint for Region.
	Endpoint string `yaml:"endpoint"`
	// Bucket holds the shared objects; it must exist. Naming it turns the
	// tier on. Default none.
	Bucket string `yaml:"bucket"`
	// Region signs the requests. Default us-east-1.
	Region string `yaml:"region"`
	// Prefix is put before every key, so several caches can share a
	// bucket apart. Default none.
	Prefix string `yaml:"prefix"`
	// PathStyle addresses ENDPOINT/BUCKET instead of BUCKET.ENDPOINT, as
	// most S3-compatible servers want. Default false.
	PathStyle bool `yaml:"path_style"`
	// CAFile is a PEM bundle trusted besides the system's roots. Default none.
	CAFile string `yaml:"ca_file"`
	// CredentialsFile is an AWS shared credentials file; the environment's
	// keys take precedence. Default: the AWS SDK's default file.
	CredentialsFile string `yaml:"credentials_file"`
}

// Enabled reports whether a bucket is configured.
func (s S3) Enabled() bool { return s.Bucket != "" }

func (s S3) validate() error {
	if !s.Enabled() {
		if s.Endpoint != "" || s.Prefix != "" || s.CAFile != "" || s.CredentialsFile != "" {
			return errors.New("storage.s3.bucket: required when any other storage.s3 key is set")
		}
		return nil
	}
	var errs []error
	if s.Endpoint != "" {
		if u, err := url.Parse(s.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("storage.s3.endpoint %q: want http://HOST[:PORT] or https://HOST[:PORT]", s.Endpoint))
		}
	}
	if strings.HasPrefix(s.Prefix, "/") {
		errs = append(errs, fmt.Errorf("storage.s3.prefix %q: keys do not start with /", s.Prefix))
	}
	for key, f := range map[string]string{"storage.s3.ca_file": s.CAFile, "storage.s3.credentials_file": s.CredentialsFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}
