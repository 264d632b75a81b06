package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pullcache/pullcache/cache/blobs"
)

// MaxObjectSize bounds a small object: a manifest (registries refuse those
// over 4 MiB), a tag record, a link. A larger one is refused on read.
const MaxObjectSize = 16 << 20

// ErrChanged is an update or delete whose If-Match named an ETag the object
// no longer has: another member wrote it since it was read.
var ErrChanged = errors.New("object changed since it was read")

// Object is a small object as read, with what a conditional write needs.
type Object struct {
	Data []byte
	// ETag names this version of the object for UpdateObject and
	// DeleteObject.
	ETag string
	// Modified is when it was last written, and ServerTime when it was
	// read, both by the bucket's clock (whole seconds, as HTTP dates are):
	// comparing them needs no agreement between members' clocks.
	Modified, ServerTime time.Time
}

// objectKey is where small object name lives: prefix/objects/NAME.
func (t *Tier) objectKey(name string) string { return t.prefix + "objects/" + name }

// GetObject reads small object name, or reports blobs.ErrNotFound.
func (t *Tier) GetObject(ctx context.Context, name string) (Object, error) {
	return t.get(ctx, t.objectKey(name))
}

// CreateObject writes object name only if it does not exist
// (If-None-Match: *), else reports blobs.ErrExists. It returns the new ETag.
func (t *Tier) CreateObject(ctx context.Context, name string, data []byte) (string, error) {
	return t.put(ctx, t.objectKey(name), data, "")
}

// UpdateObject replaces object name only if its ETag is still etag
// (If-Match), else reports ErrChanged (or blobs.ErrNotFound when it is
// gone). It returns the new ETag. S3's ETag is a hash of the content, so
// data that can return to an earlier value should carry something that
// changes (a generation, a token), or a stale ETag matches again.
func (t *Tier) UpdateObject(ctx context.Context, name string, data []byte, etag string) (string, error) {
	return t.put(ctx, t.objectKey(name), data, etag)
}

// DeleteObject deletes object name, only if its ETag is still etag when
// etag is not empty (else ErrChanged). An absent object is not an error.
func (t *Tier) DeleteObject(ctx context.Context, name, etag string) error {
	return t.delete(ctx, t.objectKey(name), etag)
}

func (t *Tier) get(ctx context.Context, key string) (Object, error) {
	out, err := t.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &t.bucket, Key: &key})
	if notFound(err) {
		return Object{}, fmt.Errorf("%w: %s: %w", blobs.ErrNotFound, key, err)
	}
	if err != nil {
		return Object{}, fmt.Errorf("s3: get %s: %w", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, MaxObjectSize+1))
	if err != nil {
		return Object{}, fmt.Errorf("s3: read %s: %w", key, err)
	}
	if len(data) > MaxObjectSize {
		return Object{}, fmt.Errorf("s3: %s is over %d bytes", key, MaxObjectSize)
	}
	t.counters.received(len(data))
	now, ok := awsmiddleware.GetServerTime(out.ResultMetadata)
	if !ok {
		now = time.Now()
	}
	return Object{Data: data, ETag: aws.ToString(out.ETag), Modified: aws.ToTime(out.LastModified), ServerTime: now}, nil
}

// put writes key if absent (ifMatch empty) or if its ETag is ifMatch.
func (t *Tier) put(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	in := &s3.PutObjectInput{
		Bucket: &t.bucket, Key: &key, Body: bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = &ifMatch
	}
	out, err := t.client.PutObject(ctx, in)
	switch {
	case err == nil:
		t.counters.sent(len(data))
		return aws.ToString(out.ETag), nil
	case conditionFailed(err) && ifMatch == "":
		return "", fmt.Errorf("%w: %s: %w", blobs.ErrExists, key, err)
	case conditionFailed(err):
		return "", fmt.Errorf("%w: %s: %w", ErrChanged, key, err)
	case notFound(err):
		// S3 answers If-Match on an absent key with 404 NoSuchKey.
		return "", fmt.Errorf("%w: %s: %w", blobs.ErrNotFound, key, err)
	}
	return "", fmt.Errorf("s3: put %s: %w", key, err)
}

func (t *Tier) delete(ctx context.Context, key, ifMatch string) error {
	in := &s3.DeleteObjectInput{Bucket: &t.bucket, Key: &key}
	if ifMatch != "" {
		in.IfMatch = &ifMatch
	}
	_, err := t.client.DeleteObject(ctx, in)
	switch {
	case err == nil, notFound(err):
		return nil
	case conditionFailed(err):
		return fmt.Errorf("%w: %s: %w", ErrChanged, key, err)
	}
	return fmt.Errorf("s3: delete %s: %w", key, err)
}
