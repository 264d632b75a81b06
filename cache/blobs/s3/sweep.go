package s3

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// SweepUploads aborts the multipart uploads under the tier's prefix started
// more than olderThan ago by the bucket's clock: the writes of members that
// died mid-fill, whose parts S3 keeps (and bills) until aborted. olderThan
// must exceed the longest write still running, so a live one is spared (a
// 10 GiB blob from a 25 MB/s upstream streams for 7 minutes): an upload's
// age says nothing of its writer's health. It returns how many it aborted.
func (t *Tier) SweepUploads(ctx context.Context, olderThan time.Duration) (int, error) {
	pages := s3.NewListMultipartUploadsPaginator(t.client, &s3.ListMultipartUploadsInput{
		Bucket: &t.bucket, Prefix: aws.String(t.prefix),
	})
	aborted := 0
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return aborted, fmt.Errorf("s3: list uploads: %w", err)
		}
		now, ok := awsmiddleware.GetServerTime(page.ResultMetadata)
		if !ok {
			now = time.Now()
		}
		for _, up := range page.Uploads {
			if now.Sub(aws.ToTime(up.Initiated)) <= olderThan {
				continue
			}
			_, err := t.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
				Bucket: &t.bucket, Key: up.Key, UploadId: up.UploadId,
			})
			if err != nil && !notFound(err) {
				return aborted, fmt.Errorf("s3: abort upload of %s: %w", aws.ToString(up.Key), err)
			}
			aborted++
		}
	}
	return aborted, nil
}
