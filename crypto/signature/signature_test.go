package signature

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret, body := []byte("0123456789abcdef0123456789abcdef"), []byte(`{"msgId":"M1"}`)
	now := time.Unix(1_800_000_000, 0)
	good := Sign(secret, body, now)
	if err := Verify(secret, body, good, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("a fresh, genuine signature: %v", err)
	}
	rotated := good + ",v1=" + strings.Repeat("ab", 32) // a core rotating its secret sends two MACs
	if err := Verify(secret, body, rotated, now, time.Minute); err != nil {
		t.Fatalf("two MACs, one genuine: %v", err)
	}
	for _, c := range []struct {
		name   string
		header string
		body   []byte
		stale  bool
		want   string
	}{
		{"missing", "", body, false, "missing"},
		{"wrong secret", Sign([]byte("another secret, another secret!!"), body, now), body, false, "does not verify"},
		{"body changed", good, []byte(`{"msgId":"M2"}`), false, "does not verify"},
		{"stale", Sign(secret, body, now.Add(-6*time.Minute)), body, true, "replay window"},
		{"future", Sign(secret, body, now.Add(6*time.Minute)), body, true, "replay window"},
		{"no t", "v1=" + strings.Repeat("00", 32), body, false, "needs t="},
		{"short mac", "t=1,v1=abcd", body, false, "hex digits"},
		{"garbage", "hello", body, false, "key=value"},
	} {
		err := Verify(secret, c.body, c.header, now, 5*time.Minute)
		var se *Error
		if !errors.As(err, &se) || se.Stale != c.stale || !strings.Contains(se.Msg, c.want) {
			t.Errorf("%s: error %v, want stale=%v mentioning %q", c.name, err, c.stale, c.want)
		}
	}
}
