// Package s3 is the blob tier on an S3-compatible bucket (AWS S3, versitygw,
// MinIO, Ceph RGW…), shared by the members of a cluster: a blobs.Tier, small
// objects written with conditions (manifests by digest, tag records,
// repository links), and leases (one fill per blob, one collector at a time).
//
// The bucket decides every race with conditional writes: a blob is completed
// with If-None-Match: *, so two members never overwrite each other and the
// loser is told ErrExists; small objects are updated with If-Match on the
// ETag read. Nothing here keeps state between calls that another member
// would need to agree with.
//
// It is not a general S3 client: it knows its key layout under a prefix
// (blobs/, objects/, leases/) and nothing of repositories or eviction.
package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullcache/pullcache/cache/blobs"
)

// Config says where the bucket is and how to reach it. Credentials come from
// the standard AWS chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the
// environment first, then CredentialsFile (or the default shared file).
type Config struct {
	// Endpoint is the URL of an S3-compatible server, such as
	// http://127.0.0.1:7070. Default: AWS's own endpoint for Region.
	Endpoint string
	// Bucket holds everything; it must exist. Required.
	Bucket string
	// Region signs the requests. Default: us-east-1.
	Region string
	// Prefix is put before every key, so several caches can share a
	// bucket. Default: none (the bucket's root).
	Prefix string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET instead of
	// BUCKET.ENDPOINT, as most S3-compatible servers want. Default: false.
	PathStyle bool
	// CAFile is a PEM bundle trusted besides the system's roots, for a
	// server with a private certificate authority. Default: none.
	CAFile string
	// CredentialsFile is a shared credentials file in AWS's format
	// ([default] aws_access_key_id = …). Default: the SDK's default file;
	// the environment's keys take precedence either way.
	CredentialsFile string
	// PartSize is the size of each multipart upload part, and so about half
	// of the most memory one write holds. Default: 8 MiB; at least 5 MiB
	// (S3's minimum part); grown for blobs that would need more than
	// 10,000 parts.
	PartSize int64
	// Metrics registers the tier's request and byte counters. Default:
	// not registered.
	Metrics prometheus.Registerer
}

// Sizes S3 imposes on multipart uploads.
const (
	minPartSize     = 5 << 20
	defaultPartSize = 8 << 20
	maxParts        = 10000
)

// Tier is a blobs.Tier in a bucket, plus its small objects and leases.
type Tier struct {
	client   *s3.Client
	counters *counters
	bucket   string
	prefix   string
	partSize int64
}

var _ blobs.Tier = (*Tier)(nil)

// New connects to the bucket named in cfg. It sends nothing: a bucket that
// is absent or refuses the credentials is reported by the first call.
func New(ctx context.Context, cfg Config) (*Tier, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket named")
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = defaultPartSize
	}
	if cfg.PartSize < minPartSize {
		return nil, fmt.Errorf("s3: part size %d is below S3's minimum of %d bytes", cfg.PartSize, minPartSize)
	}
	awsCfg, err := loadAWSConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	m := newCounters(cfg.Metrics)
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, m.count)
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// S3-compatible servers do not all know the CRC checksums the SDK
		// sends by default since 2025; digests are verified here anyway.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	prefix := cfg.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Tier{client: client, counters: m, bucket: cfg.Bucket, prefix: prefix, partSize: cfg.PartSize}, nil
}

func loadAWSConfig(ctx context.Context, cfg Config) (aws.Config, error) {
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if cfg.CredentialsFile != "" {
		opts = append(opts, config.WithSharedCredentialsFiles([]string{cfg.CredentialsFile}))
	}
	if cfg.CAFile != "" {
		client, err := httpClientTrusting(cfg.CAFile)
		if err != nil {
			return aws.Config{}, err
		}
		opts = append(opts, config.WithHTTPClient(client))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("s3: %w", err)
	}
	return awsCfg, nil
}

// httpClientTrusting is the SDK's HTTP client with caFile's certificates
// added to the system's roots.
func httpClientTrusting(caFile string) (*awshttp.BuildableClient, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("s3: ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s3: ca_file %s holds no PEM certificate", caFile)
	}
	return awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr.TLSClientConfig.RootCAs = pool
	}), nil
}

// blobKey is where blob h lives: prefix/blobs/ALGORITHM/HEX.
func (t *Tier) blobKey(h v1.Hash) string {
	return t.prefix + "blobs/" + h.Algorithm + "/" + h.Hex
}

// blobOfKey is the digest a key under blobs/ names, if it names one.
func (t *Tier) blobOfKey(key string) (v1.Hash, bool) {
	rest, ok := strings.CutPrefix(key, t.prefix+"blobs/")
	if !ok {
		return v1.Hash{}, false
	}
	alg, hex, ok := strings.Cut(rest, "/")
	if !ok {
		return v1.Hash{}, false
	}
	h, err := v1.NewHash(alg + ":" + hex)
	return h, err == nil
}

// status is the HTTP status of a failed request, or 0 when none arrived.
func status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// conditionFailed reports a conditional write the bucket refused: 412, or
// 409 ConditionalRequestConflict when another conditional write to the key
// was in flight (S3 asks to retry; for a create, the other write is most
// likely the same content or the winner).
func conditionFailed(err error) bool {
	s := status(err)
	return s == http.StatusPreconditionFailed || s == http.StatusConflict
}

func notFound(err error) bool { return status(err) == http.StatusNotFound }
