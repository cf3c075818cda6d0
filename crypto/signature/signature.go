// Package signature authenticates the HTTP messages between Tally's
// services and their counterparts: an HMAC-SHA256 over a timestamp and the
// body, carried in one header. The bridge and the bank core simulator
// sign and check each other's POSTs with it, so both sides always agree
// on the format; the risk monitor's and the merchant notifier's webhooks
// (internal/outbox) are signed with it and their receivers check it. It
// lives under crypto, below every service that uses it (the import rule:
// a service never imports a sibling service).
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Header carries the HMAC of every POST between the bank core and
// the bridge, in both directions, and of every webhook delivery:
//
//	X-Tally-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t "." body)>
//
// The timestamp is inside the MAC, so a captured request can be replayed
// only within the replay window (auth.max-skew); within it a replay is a
// duplicate, which every endpoint acknowledges without acting twice.
const Header = "X-Tally-Signature"

// Sign returns the Header value for body sent at t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Error is a request refused by Verify. Stale is set when the signature is
// genuine but its timestamp is outside the replay window.
type Error struct {
	Stale bool
	Msg   string
}

func (e *Error) Error() string { return e.Msg }

// Verify checks a Header value against body: well formed, a
// timestamp within maxSkew of now (either way: clocks drift), and a v1 MAC
// that matches. Several v1 values may be given (a core rotating its
// secret signs with both); one must match.
func Verify(secret, body []byte, header string, now time.Time, maxSkew time.Duration) error {
	if header == "" {
		return &Error{false, "missing " + Header + " header"}
	}
	var ts string
	var macs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return &Error{false, fmt.Sprintf("%s: %q is not key=value", Header, truncate(part, 80))}
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return &Error{false, fmt.Sprintf("%s: v1 is not %d hex digits", Header, 2*sha256.Size)}
			}
			macs = append(macs, b)
		}
	}
	if ts == "" || len(macs) == 0 {
		return &Error{false, Header + " needs t=<unix seconds> and v1=<hex HMAC-SHA256>"}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return &Error{false, fmt.Sprintf("%s: t=%q is not unix seconds", Header, truncate(ts, 30))}
	}
	// Check the MAC before the time, so that a stale timestamp is only
	// reported for a request that was genuinely signed with the secret.
	want := mac(secret, ts, body)
	ok := false
	for _, m := range macs {
		if hmac.Equal(m, want) {
			ok = true
		}
	}
	if !ok {
		return &Error{false, "signature does not verify (wrong secret, or the body changed)"}
	}
	// Compare times, not their difference: now.Sub saturates for a
	// timestamp centuries away, and the negated minimum duration is still
	// negative, which let such a timestamp through.
	t := time.Unix(sec, 0)
	if t.Before(now.Add(-maxSkew)) || t.After(now.Add(maxSkew)) {
		return &Error{true, fmt.Sprintf("timestamp %d is %s away from the receiver's clock, outside the replay window of %v (auth.max-skew)",
			sec, distance(now, t), maxSkew)}
	}
	return nil
}

// distance describes |now - t| for a message; time.Duration saturates
// beyond about 292 years.
func distance(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		d = -d
	}
	if d < 0 || d == math.MaxInt64 {
		return "over 292 years"
	}
	return d.Round(time.Second).String()
}

// truncate keeps echoed input short in messages.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
