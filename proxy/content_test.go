package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testETag = `"sha256:0123"`

// serveRanged answers a GET of data with the given request headers through
// serveContent, as serveBlob does, and through plain http.ServeContent.
func serveRanged(data []byte, header http.Header) (ours, plain *httptest.ResponseRecorder) {
	req := httptest.NewRequest(http.MethodGet, "/v2/a/blobs/x", nil)
	req.Header = header
	ours, plain = httptest.NewRecorder(), httptest.NewRecorder()
	ours.Header().Set("Etag", testETag)
	plain.Header().Set("Etag", testETag)
	serveContent(&recorder{ResponseWriter: ours, r: req}, req, int64(len(data)), bytes.NewReader(data))
	http.ServeContent(plain, req, "", time.Time{}, bytes.NewReader(data))
	return ours, plain
}

// checkContentAnswer: the same status ServeContent decides on, and every
// error is OCI JSON; a 416 says the size.
func checkContentAnswer(t *testing.T, data []byte, header http.Header) {
	t.Helper()
	ours, plain := serveRanged(data, header)
	if ours.Code != plain.Code {
		t.Fatalf("%v: status %d, http.ServeContent decides %d", header, ours.Code, plain.Code)
	}
	if ours.Code < 400 {
		// A multipart answer has a random boundary; any other is compared.
		multipart := strings.HasPrefix(ours.Header().Get("Content-Type"), "multipart/")
		if !multipart && !bytes.Equal(ours.Body.Bytes(), plain.Body.Bytes()) {
			t.Fatalf("%v: body differs from http.ServeContent's", header)
		}
		return
	}
	if ct := ours.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%v: %d with Content-Type %q", header, ours.Code, ct)
	}
	var body wireErrors
	if err := json.Unmarshal(ours.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 {
		t.Fatalf("%v: %d with a body that is not one OCI error: %q", header, ours.Code, ours.Body.Bytes())
	}
	if want := "bytes */" + strconv.Itoa(len(data)); ours.Code == http.StatusRequestedRangeNotSatisfiable && ours.Header().Get("Content-Range") != want {
		t.Fatalf("%v: 416 with Content-Range %q, want %q", header, ours.Header().Get("Content-Range"), want)
	}
}

func TestBlobRangesAndPreconditions(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 10)
	tests := []struct {
		header []string
		status int
		code   string
	}{
		{[]string{"Range", "bytes=10-19"}, http.StatusPartialContent, ""},
		{[]string{"Range", "bytes=-5"}, http.StatusPartialContent, ""},
		{[]string{"Range", "bytes=0-1,5-6"}, http.StatusPartialContent, ""},
		{[]string{"Range", "bytes=100-"}, http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid},
		{[]string{"Range", "bytes=20-10"}, http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid},
		{[]string{"Range", "bytes=x-y"}, http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid},
		{[]string{"Range", "pages=1-2"}, http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid},
		{[]string{"Range", "bytes=100-", "If-Range", `"other"`}, http.StatusOK, ""},
		{[]string{"If-Match", `"other"`}, http.StatusPreconditionFailed, CodeUnsupported},
		{[]string{"If-Match", testETag}, http.StatusOK, ""},
		{[]string{"If-None-Match", testETag}, http.StatusNotModified, ""},
	}
	for _, tc := range tests {
		h := http.Header{}
		for i := 0; i+1 < len(tc.header); i += 2 {
			h.Set(tc.header[i], tc.header[i+1])
		}
		ours, _ := serveRanged(data, h)
		if ours.Code != tc.status {
			t.Errorf("%v: status %d, want %d", tc.header, ours.Code, tc.status)
			continue
		}
		if tc.code != "" {
			if c := errorCode(t, response{status: ours.Code, body: ours.Body.Bytes()}); c != tc.code {
				t.Errorf("%v: code %s, want %s", tc.header, c, tc.code)
			}
		}
		checkContentAnswer(t, data, h)
	}
}

func FuzzBlobRange(f *testing.F) {
	for _, s := range [][2]string{
		{"bytes=0-0", ""}, {"bytes=-1", ""}, {"bytes=5-", `"x"`}, {"bytes=0-1,3-4,9-", ""},
		{"bytes= 1 - 2 , ,", ""}, {"bytes=99999999999999999999-", ""}, {"bytes=--1", ""}, {"bytes=", ""},
	} {
		f.Add(s[0], s[1], "", uint16(64))
	}
	f.Add("", "", `"nope", *`, uint16(0))
	f.Fuzz(func(t *testing.T, rng, ifRange, ifMatch string, size uint16) {
		h := http.Header{}
		for k, v := range map[string]string{"Range": rng, "If-Range": ifRange, "If-Match": ifMatch} {
			if v != "" {
				h.Set(k, v)
			}
		}
		checkContentAnswer(t, bytes.Repeat([]byte{'x'}, int(size%2048)), h)
	})
}
