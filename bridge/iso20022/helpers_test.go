package iso20022

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// codec bundles a message's parser and writer for generic round-trip tests.
type codec[T any] struct {
	version string
	parse   func(io.Reader) (*T, error)
	write   func(io.Writer, *T) error
}

var (
	camt054Codec = codec[Notification]{Camt054Version, ParseCamt054, WriteCamt054}
	camt053Codec = codec[Statement]{Camt053Version, ParseCamt053, WriteCamt053}
	pain001Codec = codec[PaymentOrder]{Pain001Version, ParsePain001, WritePain001}
	pain002Codec = codec[StatusReport]{Pain002Version, ParsePain002, WritePain002}
	pacs004Codec = codec[PaymentReturn]{Pacs004Version, ParsePacs004, WritePacs004}
)

func (c codec[T]) mustWrite(t testing.TB, v *T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := c.write(&buf, v); err != nil {
		t.Fatalf("write: %v", err)
	}
	return buf.Bytes()
}

func (c codec[T]) mustParse(t testing.TB, data []byte) *T {
	t.Helper()
	v, err := c.parse(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return v
}

// roundTrip writes v, checks the output against the XSD, parses it back and
// requires the same value; it returns the written bytes.
func (c codec[T]) roundTrip(t testing.TB, v *T) []byte {
	t.Helper()
	out := c.mustWrite(t, v)
	validateInstance(t, c.version, out)
	back := c.mustParse(t, out)
	if !reflect.DeepEqual(v, back) {
		t.Errorf("round trip changed the message:\n got %+v\nwant %+v", back, v)
	}
	if again := c.mustWrite(t, back); !bytes.Equal(out, again) {
		t.Errorf("second write differs:\n%s\n---\n%s", out, again)
	}
	return out
}

// rewriteStable parses data, writes it, and checks that the written form is
// XSD-valid and a fixed point of parse+write.
func (c codec[T]) rewriteStable(t testing.TB, data []byte) *T {
	t.Helper()
	v := c.mustParse(t, data)
	out := c.mustWrite(t, v)
	validateInstance(t, c.version, out)
	back := c.mustParse(t, out)
	if again := c.mustWrite(t, back); !bytes.Equal(out, again) {
		t.Errorf("parse+write is not stable:\n%s\n---\n%s", out, again)
	}
	return v
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// edit applies one string replacement that must match.
func edit(t testing.TB, data []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("edit: %q not found", old)
	}
	return bytes.Replace(data, []byte(old), []byte(new), 1)
}

func wantErr(t testing.TB, err, target error, contains ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("error %q does not mention %q", err, c)
		}
	}
}
