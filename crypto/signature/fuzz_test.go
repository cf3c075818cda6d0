package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"
)

// withinSkew is the replay window computed exactly, without overflow:
// |now - t| <= maxSkew, t in whole seconds as the header carries it.
func withinSkew(now time.Time, t int64, maxSkew time.Duration) bool {
	ns := big.NewInt(int64(time.Second))
	d := new(big.Int).Mul(big.NewInt(now.Unix()), ns)
	d.Add(d, big.NewInt(int64(now.Nanosecond())))
	d.Sub(d, new(big.Int).Mul(big.NewInt(t), ns))
	return d.Abs(d).Cmp(big.NewInt(int64(maxSkew))) <= 0
}

// FuzzVerify: Verify fails only with *Error; it accepts a header only if one
// of its v1 values is the HMAC of its t and the body and t is inside the
// replay window; a header Sign wrote is accepted exactly when its time is
// inside the window, and otherwise refused as stale.
func FuzzVerify(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"msgId":"M1","entries":[]}`)
	now := time.Unix(1_800_000_000, 0)
	good := Sign(secret, body, now)
	f.Add(body, good, now.Unix(), now.Unix())
	f.Add(body, good+",v1="+strings.Repeat("ab", 32), now.Unix(), now.Unix()+299)
	f.Add(body, " t=1800000000 , v1="+strings.Repeat("00", 32), now.Unix(), now.Unix()-301)
	f.Add([]byte{}, "t=-1,v1=", int64(-1), int64(1)<<40)
	f.Add(body, "t=99999999999999999999,v1=00", int64(1)<<62, -(int64(1) << 62))
	f.Add(body, "hello", int64(0), int64(0))
	f.Fuzz(func(t *testing.T, body []byte, header string, signedAt, checkedAt int64) {
		const maxSkew = 5 * time.Minute
		// An arbitrary header.
		err := Verify(secret, body, header, now, maxSkew)
		var se *Error
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("error is not *Error: %T %v", err, err)
		}
		if err == nil {
			ts, ok := genuine(secret, body, header)
			if !ok {
				t.Fatalf("accepted a header with no genuine MAC: %q", header)
			}
			if !withinSkew(now, ts, maxSkew) {
				t.Fatalf("accepted t=%d, outside the window of %v around %d", ts, maxSkew, now.Unix())
			}
		}
		// A genuine header, checked at another time.
		at := time.Unix(signedAt, 0)
		when := time.Unix(checkedAt, int64(uint64(checkedAt)%uint64(time.Second)))
		err = Verify(secret, body, Sign(secret, body, at), when, maxSkew)
		switch in := withinSkew(when, at.Unix(), maxSkew); {
		case in && err != nil:
			t.Fatalf("signed at %d, checked at %v: refused: %v", at.Unix(), when, err)
		case !in && (!errors.As(err, &se) || !se.Stale):
			t.Fatalf("signed at %d, checked at %v ): %v, want a stale refusal", at.Unix(), when, err)
		}
	})
}

// genuine returns the header's t when one of its v1 values is the HMAC of
// t "." body: the format read independently (comma-separated key=value
// pairs, the last t counts).
func genuine(secret, body []byte, header string) (int64, bool) {
	var ts string
	var macs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			macs = append(macs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	for _, v := range macs {
		if strings.EqualFold(v, want) {
			return sec, true
		}
	}
	return 0, false
}
