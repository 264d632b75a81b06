package cache

import (
	"bytes"
	"encoding/json"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestLeanRecordScanAgreesWithJSON(t *testing.T) {
	d1, d2 := digestOf([]byte("1")), digestOf([]byte("2"))
	for _, rec := range []manifestRecord{
		{MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1234, Refs: []Descriptor{
			{Digest: d1, Size: 7, MediaType: "application/vnd.oci.image.config.v1+json"}, {Digest: d2, Size: -1}}},
		{MediaType: "application/vnd.docker.distribution.manifest.v2+json", Size: 0},
		{MediaType: "application/vnd.oci.image.index.v1+json", Size: 9, Refs: []Descriptor{
			{Digest: d1, Size: 3, Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}}},
		{MediaType: `odd "quoted" type`, Size: 1},
	} {
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		var fast, slow leanRecord
		if err := fast.parse(b); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatal(err)
		}
		if fast.MediaType != slow.MediaType || fast.Size != slow.Size || len(fast.Refs) != len(slow.Refs) {
			t.Fatalf("%s: scanned %+v, decoded %+v", b, fast, slow)
		}
		for i := range fast.Refs {
			f, s := fast.Refs[i], slow.Refs[i]
			if !bytes.Equal(bytes.Trim(f.Digest, `"`), bytes.Trim(s.Digest, `"`)) || f.Size != s.Size || (f.Platform == nil) != (s.Platform == nil) {
				t.Errorf("%s: ref %d scanned %+v, decoded %+v", b, i, f, s)
			}
		}
	}
	var r leanRecord
	if err := r.parse([]byte(`{"t":"x","s":`)); err == nil {
		t.Error("a truncated record parsed")
	}
}
